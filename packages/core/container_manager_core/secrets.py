"""Keep secrets (registry passwords, tokens) out of reprs, logs and admin pages."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "********"
_SECRET_KEY = re.compile(
    r"pass(word)?|secret|token|credential|private[_-]?key|api[_-]?key|auth", re.IGNORECASE
)


def is_secret_key(key: str) -> bool:
    """Say whether a configuration key names a secret by its wording."""
    return bool(_SECRET_KEY.search(key))


def redact(value: Any) -> Any:
    """Return a copy of ``value`` with every secret-looking mapping entry replaced by a mask.

    A secret-named key that holds a mapping (``registry_auth``) is redacted inside, so its
    non-secret fields (``username``, ``serveraddress``) stay readable.
    """
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(item, Mapping | list | tuple):
                out[key] = redact(item)
            elif is_secret_key(str(key)) and str(key).lower() not in _NOT_SECRET:
                out[key] = REDACTED if item not in (None, "") else item
            else:
                out[key] = item
        return out
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


# Keys that match the pattern but are not secrets themselves.
_NOT_SECRET = frozenset({"auth_required", "authority", "credential_helper"})
