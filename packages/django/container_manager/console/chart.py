"""A small inline SVG chart of a job's usage samples: memory and CPU over the run, no script needed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from container_manager.console.reading import UsageSample
from container_manager.console.timing import format_bytes

WIDTH: Final = 320
HEIGHT: Final = 80
PAD: Final = 4
MEMORY_COLOUR: Final = "#0d6efd"
CPU_COLOUR: Final = "#fd7e14"


def usage_chart(samples: Sequence[UsageSample]) -> SafeString:
    """Return an SVG with one line for memory and one for CPU, each scaled to its own peak.

    Empty when there are fewer than two samples: one point draws no line.
    """
    if len(samples) < 2:
        return SafeString("")
    start = samples[0].at
    span = max((samples[-1].at - start).total_seconds(), 1e-9)

    def x(sample: UsageSample) -> float:
        return PAD + (WIDTH - 2 * PAD) * (sample.at - start).total_seconds() / span

    memory_peak = max((s.memory_bytes or 0 for s in samples), default=0)
    cpu_peak = max((s.cpu_percent or 0.0 for s in samples), default=0.0)
    lines = [
        _line(samples, x, lambda s: s.memory_bytes, memory_peak, MEMORY_COLOUR, "cm-chart-memory"),
        _line(samples, x, lambda s: s.cpu_percent, cpu_peak, CPU_COLOUR, "cm-chart-cpu"),
    ]
    title = f"Peak memory {format_bytes(memory_peak)}, peak CPU {cpu_peak:.1f} % over {span:.0f} s"
    return format_html(
        '<svg class="cm-usage-chart" role="img" width="{}" height="{}" viewBox="0 0 {} {}" '
        'xmlns="http://www.w3.org/2000/svg"><title>{}</title>'
        '<rect x="0" y="0" width="{}" height="{}" fill="none" stroke="#ccc"/>{}</svg>',
        WIDTH,
        HEIGHT,
        WIDTH,
        HEIGHT,
        title,
        WIDTH,
        HEIGHT,
        format_html_join("", "{}", ((line,) for line in lines if line)),
    )


def _line(
    samples: Sequence[UsageSample],
    x: Callable[[UsageSample], float],
    value: Callable[[UsageSample], float | None],
    peak: float,
    colour: str,
    css_class: str,
) -> SafeString:
    """Return one polyline through the samples that have a value; empty if under two do, or peak is 0."""
    known = [(x(s), v) for s in samples if (v := value(s)) is not None]
    if len(known) < 2 or peak <= 0:
        return SafeString("")
    points = " ".join(f"{px:.1f},{HEIGHT - PAD - (HEIGHT - 2 * PAD) * v / peak:.1f}" for px, v in known)
    return format_html(
        '<polyline class="{}" fill="none" stroke="{}" stroke-width="1.5" points="{}"/>',
        css_class,
        colour,
        points,
    )
