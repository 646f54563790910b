"""Argument types the management commands share."""

from __future__ import annotations

from collections.abc import Callable


def positive[N: (int, float)](kind: type[N]) -> Callable[[str], N]:
    """Return an argparse type reading a ``kind`` above zero; argparse names it in its error."""

    def parse(text: str) -> N:
        value = kind(text)
        if not value > 0:
            raise ValueError(text)
        return value

    parse.__name__ = f"positive {kind.__name__}"  # argparse says "invalid positive int value: '0'"
    return parse
