"""Worker heartbeats: a worker records itself at start, beats while it lives (idle or not), says when it stops."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from container_manager.worker.worker import Worker
from container_manager.workers import WorkerProcess
from tests.worker.conftest import make_host, make_job

LEASE = 30  # tests.worker.conftest.FAST


@pytest.mark.django_db
def test_a_worker_records_itself_and_its_clean_exit(host: Any) -> None:
    make_job(host)
    started = timezone.now()
    call_command("process_container_jobs", once=True, worker_id="beating", concurrency=3, host=["mock-1"])
    row = WorkerProcess.objects.get(worker_id="beating")
    assert (row.concurrency, row.host_names, row.running_jobs) == (3, ["mock-1"], 0)
    assert row.pid > 0 and row.hostname
    assert started <= row.started_at <= row.heartbeat_at
    assert row.stopped_at is not None
    assert not row.is_live(LEASE)
    assert list(WorkerProcess.live(LEASE)) == []


@pytest.mark.django_db(transaction=True)
def test_an_idle_worker_is_live_until_it_stops(settings: Any) -> None:
    # Beats come with lease renewals: a third of LEASE_SECONDS, so 0.3 s here.
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "LEASE_SECONDS": 1}
    make_host()
    worker = Worker(worker_id="idle-one", concurrency=1)

    def run() -> None:
        try:
            worker.run()
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        beats: set[Any] = set()
        while len(beats) < 3 and time.monotonic() < deadline:
            beats.update(
                WorkerProcess.objects.filter(worker_id="idle-one").values_list("heartbeat_at", flat=True)
            )
            time.sleep(0.1)
        assert len(beats) >= 3, "an idle worker keeps beating"
        assert [w.worker_id for w in WorkerProcess.live(1)] == ["idle-one"]
    finally:
        worker.request_stop()
        thread.join(30)
    assert not thread.is_alive()
    assert WorkerProcess.objects.get(worker_id="idle-one").stopped_at is not None
    assert list(WorkerProcess.live(1)) == []


@pytest.mark.django_db
def test_a_killed_workers_row_ages_out_of_live_and_retention_removes_old_rows() -> None:
    beat = {"hostname": "h", "pid": 7, "concurrency": 2, "host_names": (), "running": 1}
    for worker in ("alive", "killed", "long-gone", "stopped-long-ago"):
        WorkerProcess.beat(worker, **beat)
    now = timezone.now()
    WorkerProcess.objects.filter(worker_id="killed").update(heartbeat_at=now - timedelta(seconds=LEASE + 1))
    WorkerProcess.objects.filter(worker_id="long-gone").update(heartbeat_at=now - timedelta(days=40))
    WorkerProcess.stopped("stopped-long-ago")
    WorkerProcess.objects.filter(worker_id="stopped-long-ago").update(
        stopped_at=now - timedelta(days=40), heartbeat_at=now - timedelta(days=40)
    )
    assert {w.worker_id for w in WorkerProcess.live(LEASE)} == {"alive"}

    call_command("purge_finished_jobs", older_than_days=30, dry_run=True, stdout=(dry := _Out()))
    assert "2 record(s) of workers gone since before" in dry.text and "would be deleted" in dry.text
    assert WorkerProcess.objects.count() == 4
    call_command("purge_finished_jobs", older_than_days=30, stdout=(out := _Out()))
    assert "2 record(s) of workers" in out.text
    assert set(WorkerProcess.objects.values_list("worker_id", flat=True)) == {"alive", "killed"}


class _Out:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


@pytest.mark.django_db
def test_the_admin_lists_workers_read_only(admin_client: Any) -> None:
    WorkerProcess.beat("listed-worker", hostname="box-7", pid=42, concurrency=5, host_names=(), running=2)
    page = admin_client.get("/admin/container_manager/workerprocess/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "listed-worker" in html and "box-7" in html and 'alt="True"' in html
    assert admin_client.get("/admin/container_manager/workerprocess/add/").status_code == 403
