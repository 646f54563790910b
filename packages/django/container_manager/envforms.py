"""Write-only environment variables in admin forms: names are shown, values never.

Each form that edits variables (a template's, a job's overrides) has three fields:

- the variables already stored, by name, each with a box to tick to remove it (a malformed
  template line is listed by its number, so it can be removed without being shown);
- a ``NAME=value`` textarea, always empty: a name already stored gets the new value, a new
  name is added, and every value not named there is kept as stored;
- "replace all": the variables become exactly the textarea's lines.

The textarea is not filled in again when the form comes back with an error, as a password
field is not: what was typed is never sent back to the page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django import forms
from django.utils.translation import gettext_lazy as _

from container_manager_core.envedit import EnvEdit, malformed_line_choice
from container_manager_core.envfile import EnvSyntaxError, env_lines


class WriteOnlyEnvTextarea(forms.Textarea):
    """A textarea that never renders a value: neither the stored one nor the one just posted."""

    def format_value(self, value: Any) -> None:
        return None


class WriteOnlyEnvField(forms.CharField):
    """``NAME=value`` lines to set; empty keeps every stored value."""

    widget = WriteOnlyEnvTextarea(
        attrs={
            "rows": 4,
            "cols": 80,
            "spellcheck": "false",
            "autocomplete": "off",
            "placeholder": "NAME=value (one per line; values not given here are kept unchanged)",
        }
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(required=False, strip=False, **kwargs)

    def prepare_value(self, value: Any) -> str:
        return ""

    def has_changed(self, initial: Any, data: Any) -> bool:
        return bool(data and str(data).strip())


def template_choices(text: str) -> list[tuple[str, str]]:
    """Return the removal choices of a template's text: its variable names and its malformed lines."""
    choices: list[tuple[str, str]] = []
    for line in env_lines(text):
        if line.error is not None:
            choices.append(
                (malformed_line_choice(line.number), f"Line {line.number} (malformed: {line.error.reason})")
            )
        elif line.key:
            choices.append((line.key, line.key))
    return choices


def mapping_choices(mapping: object) -> list[tuple[str, str]]:
    """Return the removal choices of a job's overrides: their names."""
    if not isinstance(mapping, Mapping):
        return []
    return [(name, name) for name in sorted(map(str, mapping))]


if TYPE_CHECKING:
    _FormBase = forms.BaseForm
else:  # A mixin: the model form it joins is the form.
    _FormBase = object


class WriteOnlyEnvMixin(_FormBase):
    """The shared part: build the edit from the three fields, or put the error on the textarea."""

    env_field: str
    remove_field: str
    replace_all_field: str

    def set_removal_choices(self, choices: list[tuple[str, str]]) -> None:
        field = self.fields[self.remove_field]
        if not isinstance(field, forms.MultipleChoiceField):
            raise TypeError(f"{self.remove_field} must be a MultipleChoiceField, got {type(field).__name__}.")
        field.choices = choices
        if not choices:
            field.help_text = _("None stored yet.")

    def env_edit(self) -> EnvEdit | None:
        """Return the edit the form asks for, or None after adding the error of a malformed line."""
        try:
            self.cleaned_edit = EnvEdit.from_text(
                self.cleaned_data.get(self.env_field) or "",
                frozenset(self.cleaned_data.get(self.remove_field) or ()),
                replace_all=bool(self.cleaned_data.get(self.replace_all_field)),
            )
        except EnvSyntaxError as exc:
            self.add_error(
                self.env_field,
                forms.ValidationError(
                    _(
                        "In the variables to set, line %(line)s: %(reason)s Nothing was saved; type them again."
                    ),
                    code="env_syntax",
                    params={"line": exc.line_number, "reason": exc.reason},
                ),
            )
            return None
        return self.cleaned_edit

    def change_summary(self) -> list[str]:
        """Name what the edit set and removed, for the admin's history (never a value)."""
        edit = self.cleaned_edit
        if edit is None:
            return []
        done = [f"{name} (set)" for name in edit.set]
        done += [f"{name} (removed)" for name in sorted(edit.remove)]
        if edit.replace_all:
            done.append("all other variables (replaced)")
        return done
