"""purge_finished_jobs run while a worker claims and finishes jobs: it deletes expired history only."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import FINISHED_STATUSES, JobStatus
from tests.seeding import seed_jobs
from tests.worker.conftest import FAST, make_job
from tests.worker.processes import require_postgres, start_worker, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

EXPIRED = 2_000
QUEUED = 60


def test_a_purge_beside_a_working_worker_deletes_only_expired_finished_jobs(host: ExecutorHost) -> None:
    require_postgres()
    # History that completed 40 days ago, on the worker's host, and a queue the worker is working through.
    seed_jobs(EXPIRED, status=JobStatus.COMPLETED, host=host, oldest=timezone.now() - timedelta(days=40))
    queued = [make_job(host, env={"MOCK_DURATION": 0.2}) for _ in range(QUEUED)]
    worker = start_worker(["--concurrency", "4"], FAST)
    try:
        wait_for(
            lambda: ContainerJob.objects.filter(status__in=[JobStatus.LAUNCHING, JobStatus.RUNNING]).exists(),
            30,
            "the worker to start claiming",
        )
        out = StringIO()
        # Small batches, many transactions, interleaved with the worker's claims and exits.
        call_command("purge_finished_jobs", batch_size=50, stdout=out)
        wait_for(
            lambda: (
                ContainerJob.objects.filter(
                    pk__in=[j.pk for j in queued], status__in=FINISHED_STATUSES
                ).count()
                == QUEUED
            ),
            60,
            "every queued job to finish",
        )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert f"{EXPIRED} finished job(s) completed before" in out.getvalue()
    assert f"deleted in {EXPIRED // 50} batch(es) (completed {EXPIRED})." in out.getvalue()
    # Every job the worker ran is still there, completed, with its result; none of the history is.
    survivors = ContainerJob.objects.all()
    assert set(survivors.values_list("pk", flat=True)) == {job.pk for job in queued}
    assert set(survivors.values_list("status", flat=True)) == {JobStatus.COMPLETED}
