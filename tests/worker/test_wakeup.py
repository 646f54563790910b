"""Queued jobs wake idle workers through PostgreSQL's LISTEN/NOTIFY instead of a fast queue poll.

Checked against the triggers left out of the migration: the listener never heard a job, and the
worker with a 30 s poll did not claim the job within 10 s.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from container_manager.models import ContainerJob
from container_manager.states import JobStatus
from container_manager.worker.wakeup import QUEUE_CHANNEL, QueueListener
from container_manager.worker.worker import Worker
from tests.worker.conftest import FAST, make_host, make_job

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

HEARD_WITHIN = 10.0


class Ears:
    """Counts announcements; ``heard`` waits for the next one."""

    def __init__(self) -> None:
        self.count = 0
        self._event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self._event.set()

    def heard(self, within: float = HEARD_WITHIN) -> bool:
        got = self._event.wait(within)
        self._event.clear()
        return got

    def quiet_for(self, seconds: float) -> bool:
        return not self._event.wait(seconds)


@pytest.fixture
def ears() -> Any:
    ears = Ears()
    listener = QueueListener(ears)
    assert listener.start(), "PostgreSQL can announce queued jobs"
    assert ears.heard(), "a fresh listener calls back once, for what was queued while it was away"
    yield ears
    listener.stop()


def test_the_migration_announces_on_the_channel_the_listener_hears():
    migration = importlib.import_module("container_manager.migrations.0002_queue_notify")
    assert migration.CHANNEL == QUEUE_CHANNEL
    assert ContainerJob._meta.db_table == migration.TABLE


def test_a_created_job_is_announced_once_committed(ears: Ears):
    host = make_host()
    make_job(host)
    assert ears.heard()


def test_a_requeued_job_is_announced_and_other_updates_are_not(ears: Ears):
    host = make_host()
    job = make_job(host)
    assert ears.heard()
    ContainerJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    ContainerJob.objects.filter(pk=job.pk).update(name="renamed")
    assert ears.quiet_for(0.5), "neither a job leaving the queue nor a rename is an announcement"
    ContainerJob.objects.filter(pk=job.pk).update(status=JobStatus.PENDING)
    assert ears.heard()


def test_a_listener_hears_again_after_its_connection_was_killed(ears: Ears):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query = %s AND datname = current_database() AND pid <> pg_backend_pid()",
            [f"LISTEN {QUEUE_CHANNEL}"],
        )
        assert cursor.fetchone() is not None, "the listener's connection was found and killed"
    assert ears.heard(), "the reconnection calls back for what may have been missed"
    make_job(make_host())
    assert ears.heard()


@contextlib.contextmanager
def running_in_a_thread(worker: Worker) -> Iterator[Worker]:
    """Run ``worker`` in a thread, started, listening and past its first (empty) claim; stop it after."""

    def run() -> None:
        try:
            worker.run()
        finally:
            connection.close()  # The thread's own connection, or the test database cannot be dropped.

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)
        yield worker
    finally:
        worker.request_stop()
        thread.join(30)
    assert not thread.is_alive()


def test_an_idle_worker_with_a_slow_poll_claims_a_new_job_at_once(settings: Any):
    settings.CONTAINER_MANAGER = dict(FAST, POLL_INTERVAL=30)
    host = make_host()
    with running_in_a_thread(Worker(concurrency=2)):
        job = make_job(host)
        deadline = time.monotonic() + HEARD_WITHIN
        while time.monotonic() < deadline:
            job.refresh_from_db()
            if job.status != JobStatus.PENDING:
                break
            time.sleep(0.05)
        assert job.status != JobStatus.PENDING, "claimed long before the 30 s poll came round"


def test_a_busy_worker_with_a_slow_poll_takes_waiting_jobs_as_slots_free(settings: Any):
    # With announcements on, a freed slot does not look for work itself: a job announced while the
    # slot was busy must keep the claim due. Checked against a turn that used the cadence up before
    # asking for room (due() first): the waiting jobs stayed pending past the test's 10 s.
    settings.CONTAINER_MANAGER = dict(FAST, POLL_INTERVAL=30)
    host = make_host()
    with running_in_a_thread(Worker(concurrency=1)):
        jobs = [make_job(host) for _ in range(3)]  # Announced together; one slot takes one at a time.
        deadline = time.monotonic() + HEARD_WITHIN
        while time.monotonic() < deadline:
            finished = ContainerJob.objects.filter(pk__in=[j.pk for j in jobs], status=JobStatus.COMPLETED)
            if finished.count() == len(jobs):
                break
            time.sleep(0.05)
        assert finished.count() == len(jobs), "the waiting jobs were left for the 30 s poll"
