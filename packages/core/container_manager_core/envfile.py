"""Read and write ``KEY=VALUE`` environment text, as stored in environment templates.

Unquoted values run to the end of the line (``#`` included, since URLs contain it); double quotes
allow the escapes ``\\"``, ``\\\\``, ``\\n``, ``\\t`` and ``\\r``; single quotes are literal. Whitespace
around the key and the ``=`` is ignored, and a key may appear only once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXPORT = re.compile(r"^export\s+(?=[^=\s])")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t", "r": "\r"}
_UNESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


class EnvSyntaxError(ValueError):
    """A line of environment text is malformed; ``line_number`` counts from 1."""

    def __init__(self, line_number: int, line: str, reason: str) -> None:
        self.line_number = line_number
        self.line = line
        self.reason = reason
        super().__init__(f"Line {line_number}: {reason}")


def parse_env_text(text: str) -> dict[str, str]:
    """Parse ``KEY=VALUE`` lines into a dict, skipping blank and ``#`` comment lines."""
    result: dict[str, str] = {}
    seen_on: dict[str, int] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.removesuffix("\r")
        key, value = _parse_line(number, line)
        if not key:
            continue
        if key in seen_on:
            raise EnvSyntaxError(number, line, f"{key!r} is already set on line {seen_on[key]}.")
        seen_on[key] = number
        result[key] = value
    return result


def _parse_line(number: int, line: str) -> tuple[str, str]:
    """Return ``(key, value)`` for a variable line and ``("", "")`` for a blank or comment line."""
    body = line.strip()
    if not body or body.startswith("#"):
        return "", ""
    if "\x00" in body:
        raise EnvSyntaxError(number, line, "the line contains a NUL byte.")
    key, sep, rest = _EXPORT.sub("", body, count=1).partition("=")
    if not sep:
        raise EnvSyntaxError(number, line, f"{body!r} is not KEY=VALUE.")
    key = key.strip()
    if not _KEY.fullmatch(key):
        raise EnvSyntaxError(
            number,
            line,
            f"{key!r} is not a variable name (letters, digits and '_', not starting with a digit).",
        )
    rest = rest.strip()
    if rest.startswith('"'):
        value, end = _double_quoted(number, line, key, rest)
    elif rest.startswith("'"):
        end = rest.find("'", 1)
        if end == -1:
            raise EnvSyntaxError(number, line, f"the single-quoted value of {key!r} is not closed.")
        value = rest[1:end]
    else:
        return key, rest
    trailer = rest[end + 1 :].strip()
    if trailer and not trailer.startswith("#"):
        raise EnvSyntaxError(number, line, f"unexpected text {trailer!r} after the quoted value of {key!r}.")
    return key, value


def _double_quoted(number: int, line: str, key: str, rest: str) -> tuple[str, int]:
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
                shown = "\\" + escaped
                raise EnvSyntaxError(
                    number,
                    line,
                    f"unknown escape {shown!r} in the value of {key!r}; "
                    "write '\\\\' for a backslash or use single quotes.",
                )
            out.append(_ESCAPES[escaped])
            i += 2
            continue
        out.append(char)
        i += 1
    raise EnvSyntaxError(number, line, f"the double-quoted value of {key!r} is not closed.")


def format_env_text(mapping: Mapping[str, str]) -> str:
    """Write ``mapping`` as ``KEY=VALUE`` lines, quoting only values that need it."""
    lines: list[str] = []
    for key, value in mapping.items():
        if not _KEY.fullmatch(key):
            raise ValueError(
                f"{key!r} is not a variable name (letters, digits and '_', not starting with a digit)."
            )
        if "\x00" in value:
            raise ValueError(f"The value of {key!r} contains a NUL byte.")
        lines.append(f"{key}={_quote(value) if _needs_quotes(value) else value}")
    return "".join(line + "\n" for line in lines)


def _needs_quotes(value: str) -> bool:
    # Unquoted values lose surrounding whitespace, end at a newline, and must not look quoted.
    return (
        value != value.strip()
        or value.startswith(('"', "'"))
        or any(unicodedata.category(char) == "Cc" for char in value)
    )


def _quote(value: str) -> str:
    return '"' + "".join(_UNESCAPES.get(char, char) for char in value) + '"'
