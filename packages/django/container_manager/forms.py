"""Admin forms that never render a secret and never lose one on save.

A host's config shows its secrets (by name or by content, ``secrets.is_secret``) as the mask; on
save, any value still equal to the mask is replaced by the stored secret at the same place, so an
admin can edit the rest of the config without retyping (or ever seeing) a password. Environment
variables (templates, job overrides) are write-only: names shown, values never (``envforms``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput
from django.utils.translation import gettext_lazy as _

from container_manager.envforms import WriteOnlyEnvField, WriteOnlyEnvMixin, mapping_choices, template_choices
from container_manager.models import ContainerJob, EnvironmentVariableTemplate, ExecutorHost
from container_manager_core.envfile import parse_env_text
from container_manager_core.secrets import REDACTED, is_secret, redact

if TYPE_CHECKING:
    _HostFormBase = forms.ModelForm[ExecutorHost]
    _JobFormBase = forms.ModelForm[ContainerJob]
    _TemplateFormBase = forms.ModelForm[EnvironmentVariableTemplate]
else:  # ModelForm is generic only in the type stubs.
    _HostFormBase = _JobFormBase = _TemplateFormBase = forms.ModelForm


class MaskedJSONField(forms.JSONField):
    """A JSON form field that displays secret-named values masked."""

    widget = forms.Textarea(attrs={"rows": 8, "cols": 80, "spellcheck": "false"})

    def prepare_value(self, value: Any) -> Any:
        # Invalid input is the admin's own text from this request; anything parsed is masked.
        if isinstance(value, InvalidJSONInput):
            return value
        return super().prepare_value(redact(value))

    def has_changed(self, initial: Any, data: Any) -> bool:
        # The form compares against the masked rendering; unmasking happens in the form's clean.
        return super().has_changed(redact(initial), data)


def unmask(new: Any, stored: Any, path: str = "", name: str = "") -> Any:
    """Return ``new`` with every mask replaced by the secret ``stored`` has at the same place.

    Raises ValidationError if the mask stands where no secret was stored: it is a placeholder,
    never a value.
    """
    if isinstance(new, Mapping):
        old = stored if isinstance(stored, Mapping) else {}
        return {
            key: unmask(value, old.get(key), f"{path}.{key}" if path else str(key), str(key))
            for key, value in new.items()
        }
    if isinstance(new, list):
        old_list = stored if isinstance(stored, list) else []
        return [
            unmask(item, old_list[i] if i < len(old_list) else None, f"{path}[{i}]", name)
            for i, item in enumerate(new)
        ]
    if new == REDACTED:
        if not is_secret(name, stored):
            raise ValidationError(
                f"{path!r} holds the mask {REDACTED!r} but no secret is stored there; type the value.",
                code="mask_without_secret",
            )
        return stored
    return new


class _MaskedFormMixin:
    """Unmask each field named in ``masked_fields`` against the instance's stored value."""

    masked_fields: tuple[str, ...] = ()
    instance: Any
    cleaned_data: dict[str, Any]

    def _unmask_field(self, name: str) -> Any:
        value = self.cleaned_data.get(name)
        stored = getattr(self.instance, name, None) if self.instance.pk is not None else None
        return unmask(value, stored)


class ExecutorHostForm(_MaskedFormMixin, _HostFormBase):
    executor_config = MaskedJSONField(
        required=False,
        help_text="Plugin settings as a JSON object. Secret values show as ******** and are kept unless replaced.",
    )

    class Meta:
        model = ExecutorHost
        fields = "__all__"

    def clean_executor_config(self) -> Any:
        value = self._unmask_field("executor_config")
        return {} if value is None else value


class ContainerJobForm(WriteOnlyEnvMixin, _JobFormBase):
    env_field = "environment_overrides"
    remove_field = "remove_overrides"
    replace_all_field = "replace_all_overrides"

    remove_overrides = forms.MultipleChoiceField(
        label=_("Overrides"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Tick a variable to remove it. Values are never shown; to change one, set it below."),
    )
    environment_overrides = WriteOnlyEnvField(
        label=_("Set overrides"),
        help_text=_(
            "NAME=value lines: a name listed above gets the new value, a new name is added. "
            "Overrides win over the template's variables."
        ),
    )
    replace_all_overrides = forms.BooleanField(
        label=_("Replace all overrides"),
        required=False,
        help_text=_("The overrides become exactly the lines above; any other is removed."),
    )
    network_configuration = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text='A JSON list like [{"network_name": "app-network", "aliases": ["api"]}].',
    )

    class Meta:
        model = ContainerJob
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.set_removal_choices(mapping_choices(self.stored_overrides()))

    def stored_overrides(self) -> Mapping[str, Any]:
        stored = None if self.instance._state.adding else self.instance.environment_overrides
        return stored if isinstance(stored, Mapping) else {}

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        edit = self.env_edit()
        if edit is not None:
            cleaned["environment_overrides"] = edit.apply_to_mapping(self.stored_overrides())
        return cleaned

    def clean_network_configuration(self) -> Any:
        value = self.cleaned_data.get("network_configuration")
        return [] if value is None else value


class EnvironmentVariableTemplateForm(WriteOnlyEnvMixin, _TemplateFormBase):
    env_field = "environment_variables_text"
    remove_field = "remove_variables"
    replace_all_field = "replace_all_variables"

    remove_variables = forms.MultipleChoiceField(
        label=_("Variables"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Tick a variable to remove it. Values are never shown; to change one, set it below."),
    )
    environment_variables_text = WriteOnlyEnvField(
        label=_("Set variables"),
        help_text=_("NAME=value lines: a name listed above gets the new value, a new name is added."),
    )
    replace_all_variables = forms.BooleanField(
        label=_("Replace all variables"),
        required=False,
        help_text=_(
            "The template becomes exactly the lines above; any other variable or comment is removed."
        ),
    )

    class Meta:
        model = EnvironmentVariableTemplate
        fields = ["name", "description", "environment_variables_text"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.set_removal_choices(template_choices(self.stored_text()))

    def stored_text(self) -> str:
        return "" if self.instance._state.adding else self.instance.environment_variables_text

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        edit = self.env_edit()
        if edit is None:
            return cleaned
        text = edit.apply_to_text(self.stored_text())
        try:
            parse_env_text(text)
        except ValueError:
            # Lines of the stored text are still malformed: the model's check names them, and the
            # stored text stays as it was. Say how to mend it.
            self.add_error(
                self.env_field,
                ValidationError(
                    _(
                        "The template is invalid: tick its malformed lines under Variables, or replace all variables."
                    ),
                    code="env_syntax",
                ),
            )
        else:
            cleaned[self.env_field] = text
        return cleaned
