"""Write-only edits of environment variables: set some, remove some, or replace them all.

Whoever edits never sees a stored value: an edit names what to remove and gives the new values
to set, and every value it does not name is kept as stored. The same edit applies to a template's
text (comments, order and untouched lines kept as written) and to a job's overrides mapping.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from container_manager_core.envfile import env_lines, format_env_line, parse_env_text

# A malformed line is removed by its number: ``#3``. A variable name never starts with '#'.
MALFORMED_LINE_PREFIX = "#"


def malformed_line_choice(number: int) -> str:
    """Return the removal choice that stands for the malformed line ``number``."""
    return f"{MALFORMED_LINE_PREFIX}{number}"


def _str_map(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


def _names(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


@attrs.frozen
class EnvEdit:
    """Variables to set (new or replaced), names to remove, or all variables replaced by ``set``."""

    set: Mapping[str, str] = attrs.field(factory=dict, converter=_str_map, repr=False)
    remove: frozenset[str] = attrs.field(factory=frozenset, converter=_names)
    replace_all: bool = False

    @classmethod
    def from_text(
        cls, set_text: str, remove: frozenset[str] = frozenset(), *, replace_all: bool = False
    ) -> EnvEdit:
        """Build an edit whose variables to set are ``KEY=VALUE`` lines; raises EnvSyntaxError."""
        return cls(parse_env_text(set_text), remove, replace_all)

    @property
    def is_empty(self) -> bool:
        return not self.set and not self.remove and not self.replace_all

    def apply_to_text(self, text: str) -> str:
        """Return the template ``text`` edited; lines the edit does not touch stay as written."""
        if self.replace_all:
            return "".join(format_env_line(k, v) + "\n" for k, v in self.set.items())
        out: list[str] = []
        written: set[str] = set()
        for line in env_lines(text):
            if line.error is not None:
                if malformed_line_choice(line.number) not in self.remove:
                    out.append(line.text)
            elif line.key in self.remove or line.key in written:
                continue  # Removed, or an earlier line of the same name was just set.
            elif line.key in self.set:
                out.append(format_env_line(line.key, self.set[line.key]))
                written.add(line.key)
            else:
                out.append(line.text)
        if out and out[-1] == "":
            out.pop()  # The final newline; added back below.
        out += [format_env_line(k, v) for k, v in self.set.items() if k not in written]
        return "".join(line + "\n" for line in out)

    def apply_to_mapping(self, mapping: Mapping[str, object]) -> dict[str, object]:
        """Return a job's overrides edited: removed names dropped, set names added or replaced."""
        if self.replace_all:
            return dict(self.set)
        kept = {key: value for key, value in mapping.items() if key not in self.remove}
        return {**kept, **self.set}
