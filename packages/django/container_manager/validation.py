"""Structural checks on job and host fields, shared by model clean() and create_job().

Security rules are not here: they belong to the core policy and the executor plugins (run through
the plugin manager), so every caller of every executor sees the same rules. A host's address is its
plugin's to read (Docker: ``docker_executor.address``), through the ``validate_host`` hook.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError

from container_manager.exceptions import HostUnavailable
from container_manager_core.types import CommandForm, Violation

if TYPE_CHECKING:
    from container_manager.models import ExecutorHost

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NETWORK_KEYS = frozenset({"network_name", "aliases"})


def encode_command(command: str | Sequence[str] | None) -> tuple[str, str]:
    """Return ``(stored text, command_form)`` for a shell string or an exec-form list."""
    if command is None:
        return "", CommandForm.SHELL.value
    if isinstance(command, str):
        return command, CommandForm.SHELL.value
    if isinstance(command, list | tuple):
        args = list(command)
        if not args or not all(isinstance(arg, str) for arg in args):
            what = "an empty list" if not args else "a list with an item that is not a string"
            raise _command_error(f"An exec-form command is a non-empty list of strings, got {what}.")
        return json.dumps(args), CommandForm.EXEC.value
    raise _command_error(
        "A command is a string (shell form) or a list of strings (exec form), "
        f"got a {type(command).__name__}."
    )


def _command_error(message: str) -> ValidationError:
    # The message names the kind of value, never the value, which may be large or hold a secret.
    return field_error("command", message, "command_invalid")


def field_error(field: str, message: str, code: str) -> ValidationError:
    """Return a ValidationError on ``field`` that keeps ``code``.

    The code must sit on the field's own error: Django drops a code given beside a dict of errors.
    """
    return ValidationError({field: ValidationError(message, code=code)})


def decode_command(text: str, form: str) -> str | list[str]:
    """Return the command as the caller gave it: a string, or a list for exec form."""
    if form == CommandForm.EXEC.value:
        args = json.loads(text)
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            # Never the text: a command may carry a secret.
            raise ValueError("An exec-form command is stored as a JSON list of strings, and this one is not.")
        return args
    return text


def command_errors(text: str, form: str) -> list[str]:
    """Return what is wrong with a stored command and its form."""
    if form == CommandForm.EXEC.value:
        try:
            decode_command(text, form)
        except ValueError as exc:
            return [f"{exc}".rstrip(".") + "."]
    elif form != CommandForm.SHELL.value:
        return [f"The command form must be 'shell' or 'exec', got {form!r}."]
    elif "\x00" in text:
        return ["The command cannot contain NUL bytes."]
    return []


def environment_errors(value: object) -> list[str]:
    """Return what is wrong with a job's environment overrides (a mapping of names to strings)."""
    if not isinstance(value, Mapping):
        return [f"Environment overrides must be a mapping of names to strings, got {type(value).__name__}."]
    errors = []
    for key, item in value.items():
        if not isinstance(key, str) or not ENV_NAME.match(key):
            errors.append(
                f"Environment variable name {key!r} must be letters, digits and '_', not starting with a digit."
            )
        elif not isinstance(item, str):
            # Values are not shown: they may be secrets.
            errors.append(
                f"Environment variable {key!r} must have a string value, got {type(item).__name__}."
            )
    return errors


def retry_violations(max_retries: object, maximum: int) -> list[Violation]:
    """Return the violation of a ``max_retries`` above ``maximum`` (``CONTAINER_MANAGER['MAX_RETRIES']``)."""
    if isinstance(max_retries, int) and max_retries > maximum:
        return [
            Violation(
                "max_retries_too_high",
                f"max_retries is {max_retries!r}, above the maximum of {maximum!r} re-runs "
                "(CONTAINER_MANAGER['MAX_RETRIES']).",
                "max_retries",
            )
        ]
    return []


def network_errors(value: object) -> list[str]:
    """Return what is wrong with a network configuration: a list of ``{"network_name", "aliases"}``."""
    if not isinstance(value, list):
        return [f"The network configuration must be a list of objects, got {type(value).__name__}."]
    errors = []
    for index, entry in enumerate(value):
        where = f"Network entry {index}"
        if not isinstance(entry, Mapping):
            errors.append(f"{where} must be an object with 'network_name' and 'aliases', got {entry!r}.")
            continue
        if extra := set(entry) - _NETWORK_KEYS:
            errors.append(
                f"{where} has unknown keys {sorted(map(str, extra))!r}; use 'network_name' and 'aliases'."
            )
        name = entry.get("network_name")
        if not isinstance(name, str) or not name.strip():
            errors.append(f"{where} needs a non-empty string 'network_name', got {name!r}.")
        aliases = entry.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) and a for a in aliases):
            errors.append(f"{where} needs 'aliases' to be a list of non-empty strings, got {aliases!r}.")
    return errors


def working_directory_errors(value: str) -> list[str]:
    """Return what is wrong with a working directory (empty means the image's default)."""
    if value and not value.startswith("/"):
        return [f"The working directory must be an absolute path, got {value!r}."]
    return []


def tls_errors(host: ExecutorHost) -> dict[str, list[str]]:
    """Return what is wrong with a host's TLS file settings, by field."""
    errors: dict[str, list[str]] = {}
    if not host.tls_enabled:
        return errors
    for field in ("tls_ca_cert", "tls_client_cert", "tls_client_key"):
        path = getattr(host, field)
        if path and not path.startswith("/"):
            errors.setdefault(field, []).append(f"The TLS file path must be absolute, got {path!r}.")
    if bool(host.tls_client_cert) != bool(host.tls_client_key):
        errors.setdefault("tls_client_key", []).append(
            "A TLS client certificate and its key go together: set both or neither."
        )
    return errors


def unavailable_reason(host: ExecutorHost) -> str | None:
    """Return why a host cannot take jobs now ("inactive", "unhealthy: ..."), or None if it can."""
    if not host.is_active:
        return "inactive"
    if not host.healthy:
        error = host.last_health_error.strip().rstrip(".")
        return f"unhealthy: {error}" if error else "unhealthy"
    return None


def check_host_available(host: ExecutorHost) -> None:
    """Raise HostUnavailable if ``host`` is inactive or unhealthy."""
    reason = unavailable_reason(host)
    if reason is not None:
        raise HostUnavailable(
            f"Host {host.name!r} is unavailable ({reason}): do not queue jobs on an unavailable daemon."
        )


def positive_finite(value: float) -> None:
    """Refuse a capacity that is not a positive finite number (NaN passes a MinValueValidator)."""
    if not math.isfinite(value) or value <= 0:
        raise ValidationError(f"Must be a positive finite number, got {value!r}.", code="invalid")


def as_field_errors(errors: Mapping[str, list[str]], code: str) -> dict[str, list[ValidationError]]:
    """Wrap plain messages as ValidationErrors with ``code``, keyed by field."""
    return {
        field: [ValidationError(m, code=code) for m in messages]
        for field, messages in errors.items()
        if messages
    }
