"""How the console writes times: exact to the second with the time zone, and elapsed run time."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from container_manager.models import ContainerJob
from container_manager.states import ACTIVE_STATUSES


def exact(moment: datetime | None) -> str:
    """Return ``moment`` in the current time zone to the second, with the zone's name; '-' for None."""
    if moment is None:
        return "-"
    local = timezone.localtime(moment) if timezone.is_aware(moment) else moment
    return local.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def elapsed(job: ContainerJob, now: datetime | None = None) -> timedelta | None:
    """Return how long the job has run: to its end once finished, to ``now`` while it is active.

    A launching job counts from its launch, a running one from its start; a job that never
    launched has no elapsed time.
    """
    start = job.started_at or job.launched_at
    if start is None:
        return None
    if job.status in ACTIVE_STATUSES:
        return (now or timezone.now()) - start
    if job.completed_at is not None:
        return job.completed_at - start
    return None


def format_duration(duration: timedelta | None) -> str:
    """Return ``duration`` as '4.2 s', '3 min 7 s' or '2 h 5 min'; '-' for None."""
    if duration is None:
        return "-"
    seconds = max(duration.total_seconds(), 0.0)
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def format_bytes(count: int | None) -> str:
    """Return a byte count in binary units ('24.0 MiB'); '-' for None."""
    if count is None:
        return "-"
    value = float(count)
    units = ("B", "KiB", "MiB", "GiB")
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    return f"{count} B" if unit == 0 else f"{value:.1f} {units[unit]}"
