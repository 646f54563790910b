"""Retention: purge_finished_jobs deletes expired finished jobs in batches and nothing else."""

from __future__ import annotations

import math
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from container_manager.conf import app_settings
from container_manager.management.argtypes import positive
from container_manager.models import ContainerJob
from container_manager.retention import purge_expired, retention_cutoff
from container_manager.states import JobStatus
from tests.factories import advance, make_job

pytestmark = pytest.mark.django_db

OLD = timedelta(days=40)  # beyond the default 30 days


def job_in(status: JobStatus, *, age: timedelta) -> ContainerJob:
    """A job in ``status`` whose completed_at (and created_at) lie ``age`` in the past."""
    job = advance(make_job(), status)
    when = timezone.now() - age
    ContainerJob.objects.filter(pk=job.pk).update(completed_at=when, created_at=when)
    return job


def purge(*args: str) -> str:
    out = StringIO()
    call_command("purge_finished_jobs", *args, stdout=out)
    return out.getvalue()


def remaining() -> set[str]:
    return {str(pk) for pk in ContainerJob.objects.values_list("pk", flat=True)}


def test_only_expired_finished_jobs_are_deleted() -> None:
    finished = [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.TIMEOUT, JobStatus.CANCELLED]
    expired = [job_in(status, age=OLD) for status in finished]
    recent = [job_in(status, age=timedelta(days=1)) for status in finished]
    # Queued and active jobs are never deleted, even with a completion time in the past (a row
    # written by hand, an old run's leftovers).
    unfinished = [
        job_in(status, age=OLD)
        for status in (JobStatus.PENDING, JobStatus.RETRYING, JobStatus.LAUNCHING, JobStatus.RUNNING)
    ]

    output = purge()

    assert remaining() == {str(j.pk) for j in recent + unfinished}
    assert "4 finished job(s) completed before" in output
    assert "deleted in 1 batch(es) (cancelled 1, completed 1, failed 1, timeout 1)." in output
    assert {str(j.pk) for j in expired}.isdisjoint(remaining())


def test_small_batches_each_in_their_own_transaction() -> None:
    for _ in range(5):
        job_in(JobStatus.COMPLETED, age=OLD)
    seen: list[int] = []

    purged = purge_expired(retention_cutoff(), batch_size=2, on_batch=lambda p: seen.append(p.total))

    assert (purged.total, purged.batches, seen) == (5, 3, [2, 4, 5])
    assert not ContainerJob.objects.exists()


def test_a_dry_run_counts_and_deletes_nothing() -> None:
    jobs = [job_in(JobStatus.FAILED, age=OLD) for _ in range(2)] + [job_in(JobStatus.COMPLETED, age=OLD)]

    output = purge("--dry-run")

    assert remaining() == {str(j.pk) for j in jobs}
    assert "3 finished job(s) completed before" in output
    assert "would be deleted (completed 1, failed 2)." in output


def test_the_setting_and_the_flag_decide_the_age() -> None:
    job = job_in(JobStatus.COMPLETED, age=timedelta(days=3))
    with override_settings(CONTAINER_MANAGER={"FINISHED_JOB_RETENTION_DAYS": 5}):
        assert "0 finished job(s)" in purge()
        assert remaining() == {str(job.pk)}
        assert "1 finished job(s)" in purge("--older-than-days", "2")
    assert not remaining()


def test_retention_off_is_refused_with_the_reason() -> None:
    with override_settings(CONTAINER_MANAGER={"FINISHED_JOB_RETENTION_DAYS": None}):
        assert retention_cutoff() is None
        with pytest.raises(CommandError, match="FINISHED_JOB_RETENTION_DAYS is None"):
            purge()


@pytest.mark.parametrize("value", [0, -1, "30", float("nan"), True])
def test_a_bad_retention_setting_is_refused(value: object) -> None:
    with (
        override_settings(CONTAINER_MANAGER={"FINISHED_JOB_RETENTION_DAYS": value}),
        pytest.raises(ImproperlyConfigured, match="FINISHED_JOB_RETENTION_DAYS"),
    ):
        app_settings()


@given(st.floats(width=32))
def test_the_flags_accept_positive_finite_numbers_only(value: float) -> None:
    parse = positive(float)
    if value > 0 and math.isfinite(value):
        assert parse(repr(value)) == value
    else:
        with pytest.raises(ValueError):
            parse(repr(value))
