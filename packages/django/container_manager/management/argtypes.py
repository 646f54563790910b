"""Argument types the management commands share."""

from __future__ import annotations

import math
from collections.abc import Callable


def positive[N: (int, float)](kind: type[N]) -> Callable[[str], N]:
    """Return an argparse type reading a finite ``kind`` above zero; argparse names it in its error.

    Infinity is refused too: as a sleep interval or an age it means "never" by accident.
    """

    def parse(text: str) -> N:
        value = kind(text)
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(text)
        return value

    parse.__name__ = f"positive {kind.__name__}"  # argparse says "invalid positive int value: '0'"
    return parse
