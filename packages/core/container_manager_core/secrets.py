"""The one rule for "is this a secret", and the masks that keep secrets out of reprs, logs and pages.

A value is secret when its name says so (``DB_PASSWORD``, ``GITHUB_PAT``, ``identitytoken``) or its
content does (a URL with credentials, a known token format, a private key, a JWT). Names are split
into words (``_``, ``-``, ``.``, spaces, digits, camelCase), so ``PAT`` is a word of ``GITHUB_PAT``
but not of ``PATH``, and ``AUTH`` of ``BASIC_AUTH`` but not of ``AUTHOR``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "********"

# A name word equal to one of these marks a secret.
_SECRET_WORDS = frozenset(
    {
        "password", "passwd", "pwd", "pass", "passphrase",
        "secret", "secrets", "token", "tokens", "key", "keys", "apikey", "privkey",
        "dsn", "pat", "credential", "credentials", "creds",
        "auth", "authorization", "bearer", "private", "cookie", "jwt",
    }
)  # fmt: skip
# Run-together names (Docker's ``identitytoken``, ``clientsecret``) end in one of these.
_SECRET_SUFFIXES = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "credential",
    "credentials",
    "apikey",
)
_NAME_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")

# Known credential formats, found anywhere in a value or a text.
_TOKEN_FORMATS = (
    r"gh[pousr]_[A-Za-z0-9]{20,}",  # GitHub tokens
    r"github_pat_[A-Za-z0-9_]{20,}",  # GitHub fine-grained tokens
    r"glpat-[A-Za-z0-9_-]{20,}",  # GitLab
    r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b",  # AWS access key ids
    r"xox[abeoprs]-[A-Za-z0-9-]{10,}",  # Slack tokens
    r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+",  # Slack webhooks
    r"AIza[0-9A-Za-z_-]{35}",  # Google API keys
    r"\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}",  # Stripe
    r"\bwhsec_[0-9A-Za-z]{16,}",  # Stripe webhook secrets
    r"\bsk-[A-Za-z0-9_-]{20,}",  # OpenAI, Anthropic and others' sk- keys
    r"\bnpm_[A-Za-z0-9]{36}",  # npm
    r"\bpypi-[A-Za-z0-9_-]{40,}",  # PyPI
    r"\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}",  # SendGrid
    r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*",  # JSON Web Tokens
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|.*)",
    r"\b(?:Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}",  # HTTP Authorization values
)
_TOKEN = re.compile("|".join(f"(?:{pattern})" for pattern in _TOKEN_FORMATS), re.DOTALL)
# A URL's user part (``user:password@``, a DSN's ``key@``): what sits between ``//`` and ``@``.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@?#]+)@")
# ``NAME=value`` and ``--name=value`` in free text, and ``'name': 'value'`` in a quoted mapping; the
# value is masked when the name is secret. A bare ``name: value`` is prose ("host 'private-x': ..."), not a pair.
_VALUE = r"(?P<value>\"[^\"]*\"|'[^']*'|(?P<bare>[^\s&;,'\"]+))"
_ASSIGNMENT = re.compile(
    rf"(?P<name>[A-Za-z_][A-Za-z0-9_.-]{{0,100}})(?P<sep>\s*=\s*){_VALUE}"
    r"|(?P<quote>[\"'])(?P<qname>[A-Za-z_][A-Za-z0-9_.-]{0,100})(?P=quote)(?P<qsep>\s*:\s*)"
    r"(?P<qvalue>\"[^\"]*\"|'[^']*')"
)


def is_secret_name(name: str) -> bool:
    """Say whether a variable or configuration name says its value is a secret."""
    for word in _NAME_WORD.findall(name):
        word = word.lower()
        if word in _SECRET_WORDS or word.endswith(_SECRET_SUFFIXES):
            return True
    return False


def looks_secret(value: str) -> bool:
    """Say whether a value holds a credential by its content, whatever it is named."""
    return bool(_TOKEN.search(value) or _URL_USERINFO.search(value))


def is_secret(name: str, value: object) -> bool:
    """The rule: a non-empty value is secret if its name or its content says so."""
    if value is None or isinstance(value, bool) or value == "":
        return False
    return is_secret_name(name) or (isinstance(value, str) and looks_secret(value))


def redact(value: Any, name: str = "") -> Any:
    """Return a copy of ``value`` with every secret replaced by the mask, by name or by content.

    A secret-named key that holds a mapping (``registry_auth``) is redacted inside, so its
    non-secret fields (``username``, ``serveraddress``) stay readable; the items of a list take
    the name of the key that holds it.
    """
    if isinstance(value, Mapping):
        return {key: redact(item, str(key)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact(item, name) for item in value]
    return REDACTED if is_secret(name, value) else value


def mask_values(env: Mapping[str, object]) -> dict[str, str]:
    """Return ``env`` with every value masked: its names, for reprs and pages that show variables."""
    return {str(key): REDACTED for key in env}


def scrub(text: str) -> str:
    """Return ``text`` with every secret it quotes masked: credentials in URLs, known token formats,
    and the values of secret-named ``NAME=value`` pairs.

    The net under messages and log lines that may quote an engine's, a plugin's or a user's words.
    Values whose secrecy only their name tells are masked only where the name stands beside them,
    so messages name variables and never quote values.
    """
    text = _TOKEN.sub(REDACTED, text)
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    return _ASSIGNMENT.sub(_mask_assignment, text)


def _mask_assignment(match: re.Match[str]) -> str:
    name, value = (match["name"], match["value"]) if match["name"] else (match["qname"], match["qvalue"])
    if not is_secret_name(name) or value.strip("\"'") == REDACTED:
        return match[0]
    masked = REDACTED if match["bare"] else value[0] + REDACTED + value[-1]
    return match[0][: match[0].rindex(value)] + masked
