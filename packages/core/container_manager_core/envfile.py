"""Read and write ``KEY=VALUE`` environment text, as stored in environment templates.

Unquoted values run to the end of the line (``#`` included, since URLs contain it); double quotes
allow the escapes ``\\"``, ``\\\\``, ``\\n``, ``\\t`` and ``\\r``; single quotes are literal. Whitespace
around the key and the ``=`` is ignored, and a key may appear only once.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping

import attrs

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXPORT = re.compile(r"^export\s+(?=[^=\s])")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
_UNESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


class EnvSyntaxError(ValueError):
    """A line of environment text is malformed; ``line_number`` counts from 1.

    The message names the line and, once it is known to be one, the variable; it never quotes
    the line, whose value may be a secret.
    """

    def __init__(self, line_number: int, reason: str) -> None:
        self.line_number = line_number
        self.reason = reason
        super().__init__(f"Line {line_number}: {reason}")


@attrs.frozen
class EnvLine:
    """One line of environment text: a variable (``key``), a blank or comment (``key`` is ""), or an error."""

    number: int
    text: str
    key: str = ""
    value: str = attrs.field(default="", repr=False)
    error: EnvSyntaxError | None = None


def env_lines(text: str) -> list[EnvLine]:
    """Read every line of ``text`` on its own; a malformed line carries its error instead of raising."""
    lines: list[EnvLine] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        try:
            key, value = _parse_line(number, line)
        except EnvSyntaxError as exc:
            lines.append(EnvLine(number, raw, error=exc))
        else:
            lines.append(EnvLine(number, raw, key, value))
    return lines


def parse_env_text(text: str) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines into a dict, skipping blank and ``#`` comment lines."""
    result: dict[str, str] = {}
    seen_on: dict[str, int] = {}
    for line in env_lines(text):
        if line.error is not None:
            raise line.error
        if not line.key:
            continue
        if line.key in seen_on:
            raise EnvSyntaxError(line.number, f"{line.key!r} is already set on line {seen_on[line.key]}.")
        seen_on[line.key] = line.number
        result[line.key] = line.value
    return result


def _parse_line(number: int, line: str) -> tuple[str, str]:
    """Return ``(key, value)`` for a variable line and ``("", "")`` for a blank or comment line."""
    body = line.strip()
    if not body or body.startswith("#"):
        return "", ""
    if "\x00" in body:
        raise EnvSyntaxError(number, "the line contains a NUL byte.")
    key, sep, rest = _EXPORT.sub("", body, count=1).partition("=")
    if not sep:
        raise EnvSyntaxError(number, "there is no '=': each variable is NAME=value on a line of its own.")
    key = key.strip()
    if not _KEY.fullmatch(key):
        raise EnvSyntaxError(
            number,
            f"the text before '=' is not a variable name ({_name_fault(key)}); "
            "a name is letters, digits and '_', not starting with a digit.",
        )
    rest = rest.strip()
    if rest.startswith('"'):
        value, end = _double_quoted(number, key, rest)
    elif rest.startswith("'"):
        end = rest.find("'", 1)
        if end == -1:
            raise EnvSyntaxError(number, f"the single-quoted value of {key!r} is not closed.")
        value = rest[1:end]
    else:
        return key, rest
    trailer = rest[end + 1 :].strip()
    if trailer and not trailer.startswith("#"):
        raise EnvSyntaxError(
            number, f"there is text after the closing quote of {key!r}; only a '#' comment may follow it."
        )
    return key, value


def _name_fault(text: str) -> str:
    """Say what is wrong with a name without quoting it: it may be a value typed in the wrong place."""
    if not text:
        return "it is empty"
    if text[0].isdigit():
        return "it starts with a digit"
    bad = next(char for char in text if not re.fullmatch(r"[A-Za-z0-9_]", char))
    if bad.isspace():
        return "it contains a space"
    if bad in string.punctuation:
        return f"it contains {bad!r}"
    return "it contains a character other than ASCII letters, digits and '_'"


def _double_quoted(number: int, key: str, rest: str) -> tuple[str, int]:
    """Decode the double-quoted value at the start of ``rest``; return it and the closing quote's index."""
    out: list[str] = []
    i = 1
    while i < len(rest):
        char = rest[i]
        if char == '"':
            return "".join(out), i
        if char == "\\":
            escaped = rest[i + 1 : i + 2]
            if escaped not in _ESCAPES:
                raise EnvSyntaxError(
                    number,
                    f"the double-quoted value of {key!r} has an unknown escape at its character {i}: "
                    "a backslash goes before \", \\, n, t or r; write '\\\\' for a backslash or use single quotes.",
                )
            out.append(_ESCAPES[escaped])
            i += 2
            continue
        out.append(char)
        i += 1
    raise EnvSyntaxError(number, f"the double-quoted value of {key!r} is not closed.")


def format_env_text(mapping: Mapping[str, str]) -> str:
    """Write ``mapping`` as ``KEY=VALUE`` lines, quoting only values that need it."""
    return "".join(format_env_line(key, value) + "\n" for key, value in mapping.items())


def format_env_line(key: str, value: str) -> str:
    """Write one ``KEY=VALUE`` line (no newline), quoting the value only if it needs it."""
    if not _KEY.fullmatch(key):
        raise ValueError(
            f"{key!r} is not a variable name (letters, digits and '_', not starting with a digit)."
        )
    if "\x00" in value:
        raise ValueError(f"The value of {key!r} contains a NUL byte.")
    return f"{key}={_quote(value) if _needs_quotes(value) else value}"


def _needs_quotes(value: str) -> bool:
    # Unquoted values lose surrounding whitespace, end at a newline, and must not look quoted.
    return (
        value != value.strip()
        or value.startswith(('"', "'"))
        or any(unicodedata.category(char) == "Cc" for char in value)
    )


def _quote(value: str) -> str:
    return '"' + "".join(_UNESCAPES.get(char, char) for char in value) + '"'
