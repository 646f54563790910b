"""Admin forms whose JSON fields never render a secret and never lose one on save.

The widget shows secret-named values as the mask; on save, any value still equal to the mask is
replaced by the stored secret at the same place, so an admin can edit the rest of the config without
retyping (or ever seeing) a password.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput

from container_manager.models import ContainerJob, ExecutorHost
from container_manager_core.secrets import REDACTED, is_secret_key, redact

if TYPE_CHECKING:
    _HostFormBase = forms.ModelForm[ExecutorHost]
    _JobFormBase = forms.ModelForm[ContainerJob]
else:  # ModelForm is generic only in the type stubs.
    _HostFormBase = _JobFormBase = forms.ModelForm


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


def unmask(new: Any, stored: Any, path: str = "") -> Any:
    """Return ``new`` with every masked secret replaced by the value ``stored`` has at the same place.

    Raises ValidationError if the mask stands where no secret was stored: it is a placeholder,
    never a value.
    """
    if isinstance(new, Mapping):
        old = stored if isinstance(stored, Mapping) else {}
        out: dict[str, Any] = {}
        for key, value in new.items():
            where = f"{path}.{key}" if path else str(key)
            if value == REDACTED and is_secret_key(str(key)):
                if key not in old or old[key] in (None, ""):
                    raise ValidationError(
                        f"{where!r} holds the mask {REDACTED!r} but no secret is stored there; type the value.",
                        code="mask_without_secret",
                    )
                out[key] = old[key]
            else:
                out[key] = unmask(value, old.get(key), where)
        return out
    if isinstance(new, list):
        old_list = stored if isinstance(stored, list) else []
        return [
            unmask(item, old_list[i] if i < len(old_list) else None, f"{path}[{i}]")
            for i, item in enumerate(new)
        ]
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


class ContainerJobForm(_MaskedFormMixin, _JobFormBase):
    environment_overrides = MaskedJSONField(
        required=False,
        help_text="A JSON object of variables that win over the template's. Secret values show masked.",
    )
    network_configuration = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text='A JSON list like [{"network_name": "app-network", "aliases": ["api"]}].',
    )

    class Meta:
        model = ContainerJob
        fields = "__all__"

    def clean_environment_overrides(self) -> Any:
        value = self._unmask_field("environment_overrides")
        return {} if value is None else value

    def clean_network_configuration(self) -> Any:
        value = self.cleaned_data.get("network_configuration")
        return [] if value is None else value
