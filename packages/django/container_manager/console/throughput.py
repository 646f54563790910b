"""The last hour's work: how many jobs finished, and what share of those that ran failed.

Counted over the finished jobs whose ``completed_at`` falls in the window, the rows the finished-jobs
index (status in the finished statuses, by completed_at) holds in order, so the count reads the last
hour's rows and no others, however long the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from django.db.models import Count
from django.utils import timezone

from container_manager.models import ContainerJob
from container_manager.states import FINISHED_STATUSES, JobStatus

WINDOW: Final = timedelta(hours=1)
# Jobs that ran and did not succeed; a cancelled job is neither a success nor a failure.
FAILURES: Final = frozenset({JobStatus.FAILED, JobStatus.TIMEOUT})


@dataclass(frozen=True)
class Throughput:
    since: datetime
    by_status: dict[str, int]

    @property
    def finished(self) -> int:
        return sum(self.by_status.values())

    @property
    def failed(self) -> int:
        return sum(self.by_status.get(status, 0) for status in FAILURES)

    @property
    def ran(self) -> int:
        """Finished jobs other than cancelled ones: those a failure rate is a share of."""
        return self.finished - self.by_status.get(JobStatus.CANCELLED, 0)

    @property
    def failure_rate(self) -> float | None:
        """Failed and timed-out jobs as a share of those that ran; None when none ran."""
        return self.failed / self.ran if self.ran else None


def last_hour(now: datetime | None = None) -> Throughput:
    """Return the jobs finished in the hour before ``now``, counted by status."""
    since = (now or timezone.now()) - WINDOW
    counts = (
        ContainerJob.objects.filter(status__in=sorted(FINISHED_STATUSES), completed_at__gte=since)
        .order_by()
        .values_list("status")
        .annotate(n=Count("pk"))
    )
    return Throughput(since, {str(status): n for status, n in counts})
