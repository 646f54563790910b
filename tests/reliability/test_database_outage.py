"""The database is gone for 20 s while jobs run and others wait: the worker pauses, then carries on.

The real worker process, the real Docker Engine, and a real outage: PostgreSQL's cluster stopped
and started again (`pg_ctlcluster`), or a SQLite file held under an exclusive lock by this test's
process (``BEGIN EXCLUSIVE``: every read and write of the worker then fails with "database is
locked"; making the file unreadable does not work when the tests run as root). The jobs running
at the outage exit during it, so their results wait in the worker until the database is back.

Each test asserts: the worker process stays alive and exits 0 when told to, every job ran exactly
once (one engine ``start`` event each, attempt 1) with its own result, the worker stopped no
container during the outage and left none behind, and its log holds a handful of
``database_error`` lines, not hundreds.

Checked against the loop before the backoff (a wake-up event never cleared after the pause, and
``0.25 * 2**failures``): on PostgreSQL the worker spun through 1,024 errors within a second of the
first exit report and died with ``OverflowError``, leaving its jobs ``running``; on SQLite, where
each try costs the 0.2 s busy timeout, it logged about a hundred ``database_error`` lines.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import docker
import pytest
from django.db import DatabaseError, connection

from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import FINISHED_STATUSES, JobStatus
from tests.reliability.conftest import StartCounter, make_docker_job, managed_containers, remove_containers
from tests.worker.processes import ROOT, start_worker

OUTAGE_SECONDS = 20
# Jobs running when the database goes: they exit during the outage. The rest wait in the queue.
CONCURRENCY = 3
JOBS = 6
SCRIPT = "sleep 5; exit {code}"
# A few lines for the first failures, one a minute after them: a bound that a spinning loop breaks.
MAX_ERROR_LINES = 5


def expected_exit(index: int) -> int:
    return index % 2


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, worker: subprocess.Popen[bytes], log: Path
) -> None:
    """Poll ``predicate`` until true; fail if the worker dies first or ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert worker.poll() is None, f"The worker died ({worker.returncode}):\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"Timed out waiting for {what}:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def outage(worker: subprocess.Popen[bytes], log: Path) -> None:
    """Let the outage last OUTAGE_SECONDS, checking all along that the worker lives."""
    end = time.monotonic() + OUTAGE_SECONDS
    while time.monotonic() < end:
        assert worker.poll() is None, f"The worker died in the outage:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def stop_worker(worker: subprocess.Popen[bytes]) -> int | None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    try:
        return worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
        return None


def check_run(
    *,
    jobs: dict[str, int],
    rows: dict[str, tuple[str, int | None, int]],
    starts: StartCounter,
    client: docker.DockerClient,
    log: Path,
    code: int | None,
) -> None:
    text = log.read_text()
    assert code == 0, text[-3000:]
    errors = text.count("event=database_error")
    assert 1 <= errors <= MAX_ERROR_LINES, f"{errors} database_error lines:\n{text[-3000:]}"
    assert text.count("event=database_back") == 1, text[-3000:]  # One outage, ended once.
    counts = starts.close()
    assert {jobs[pk]: counts[pk] for pk in jobs if counts[pk] != 1} == {}, starts.history
    # The worker stopped nothing: every container ended by itself (a stop shows as "kill").
    stopped = {
        jobs[pk]: events
        for pk, events in starts.history.items()
        if pk in jobs and any(" kill" in e for e in events)
    }
    assert stopped == {}
    wrong = {
        jobs[pk]: row
        for pk, row in rows.items()
        if row
        != (
            JobStatus.COMPLETED if expected_exit(jobs[pk]) == 0 else JobStatus.FAILED,
            expected_exit(jobs[pk]),
            1,
        )
    }
    assert wrong == {}, text[-3000:]
    deadline = time.monotonic() + 15
    while (left := managed_containers(client, set(jobs))) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [], "containers left behind"


# PostgreSQL -------------------------------------------------------------------------------------


def served_cluster() -> tuple[str, str]:
    """Return the version and name of the local cluster that serves CM_TEST_DATABASE_URL's port."""
    if shutil.which("pg_lsclusters") is None:
        pytest.fail("Stopping PostgreSQL needs pg_lsclusters and pg_ctlcluster (Debian's postgresql-common).")
    port = str(urlparse(os.environ["CM_TEST_DATABASE_URL"]).port or 5432)
    listing = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True)
    for line in listing.stdout.splitlines():
        version, name, cluster_port = line.split()[:3]
        if cluster_port == port:
            return version, name
    pytest.fail(
        f"No local PostgreSQL cluster listens on port {port}: this test must stop the server it uses."
    )


@contextmanager
def postgres_stopped() -> Iterator[None]:
    """Stop the test's PostgreSQL cluster for the block; start it again even if the block fails."""
    version, name = served_cluster()
    connection.close()
    subprocess.run(["pg_ctlcluster", version, name, "stop", "-m", "fast"], check=True, timeout=60)
    try:
        yield
    finally:
        subprocess.run(["pg_ctlcluster", version, name, "start"], check=True, timeout=60)


def pg_rows(ids: list[str]) -> dict[str, tuple[str, int | None, int]]:
    """Read the jobs' status, exit code and attempt, reconnecting while the server comes back."""
    for _ in range(100):
        try:
            rows = ContainerJob.objects.filter(pk__in=ids).values_list("pk", "status", "exit_code", "attempt")
            return {str(pk): (status, code, attempt) for pk, status, code, attempt in rows}
        except DatabaseError:
            connection.close()
            time.sleep(0.2)
    pytest.fail("The database did not come back within 20 s.")


@pytest.mark.docker
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_postgresql_stopped_for_20_seconds(
    docker_host: ExecutorHost,
    test_image: str,
    start_counter: StartCounter,
    worker_settings: dict[str, Any],
    docker_client: docker.DockerClient,
    tmp_path: Path,
):
    jobs = {
        str(make_docker_job(test_image, SCRIPT.format(code=expected_exit(i)), docker_host).pk): i
        for i in range(JOBS)
    }
    ids = list(jobs)
    log_path = tmp_path / "worker.log"

    def running() -> int:
        return sum(status == JobStatus.RUNNING for status, _, _ in pg_rows(ids).values())

    def finished() -> bool:
        return all(status in FINISHED_STATUSES for status, _, _ in pg_rows(ids).values())

    try:
        with log_path.open("wb") as log:
            worker = start_worker(["--concurrency", str(CONCURRENCY)], worker_settings, log=log)
            try:
                wait_until(lambda: running() == CONCURRENCY, 60, "the first jobs to run", worker, log_path)
                with postgres_stopped():
                    outage(worker, log_path)
                wait_until(finished, 60, "every job to finish", worker, log_path)
            finally:
                code = stop_worker(worker)
        check_run(
            jobs=jobs, rows=pg_rows(ids), starts=start_counter, client=docker_client, log=log_path, code=code
        )
    finally:
        remove_containers(docker_client, set(jobs))


# SQLite -----------------------------------------------------------------------------------------


def sqlite_env(path: Path) -> dict[str, str]:
    return dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="tests.reliability.sqlite_outage_settings",
        CM_SQLITE_FILE=str(path),
        PYTHONUNBUFFERED="1",
    )


def sqlite_queue(path: Path, image: str, settings: dict[str, Any]) -> dict[str, int]:
    """Migrate a new SQLite file and queue the jobs there, in a process of its own; return {id: index}."""
    env = dict(sqlite_env(path), CM_WORKER_SETTINGS=json.dumps(settings))
    django = [sys.executable, "-m", "django"]
    subprocess.run([*django, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=120)
    code = (
        "import json\n"
        "from tests.reliability.conftest import make_docker_host, make_docker_job\n"
        "host = make_docker_host()\n"
        f"jobs = {{str(make_docker_job({image!r}, {SCRIPT!r}.format(code=i % 2), host).pk): i for i in range({JOBS})}}\n"
        "print(json.dumps(jobs))\n"
    )
    done = subprocess.run(
        [*django, "shell", "-c", code],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    )
    return {pk: int(i) for pk, i in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def sqlite_rows(path: Path) -> dict[str, tuple[str, int | None, int]]:
    with closing(sqlite3.connect(path, timeout=10)) as db:
        found = db.execute(
            "SELECT id, status, exit_code, attempt FROM container_manager_containerjob"
        ).fetchall()
    # Django stores UUIDs on SQLite as 32 hex digits.
    return {f"{pk[:8]}-{pk[8:12]}-{pk[12:16]}-{pk[16:20]}-{pk[20:]}": (s, c, a) for pk, s, c, a in found}


@contextmanager
def sqlite_locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the SQLite file for the block: nobody else can read or write it."""
    with closing(sqlite3.connect(path, timeout=30, isolation_level=None)) as db:
        db.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            db.execute("ROLLBACK")


@pytest.mark.docker
@pytest.mark.slow
def test_sqlite_locked_for_20_seconds(
    test_image: str,
    start_counter: StartCounter,
    worker_settings: dict[str, Any],
    docker_client: docker.DockerClient,
    tmp_path: Path,
):
    path = tmp_path / "outage.sqlite3"
    jobs = sqlite_queue(path, test_image, worker_settings)
    log_path = tmp_path / "worker.log"

    def running() -> int:
        return sum(status == JobStatus.RUNNING for status, _, _ in sqlite_rows(path).values())

    def finished() -> bool:
        return all(status in FINISHED_STATUSES for status, _, _ in sqlite_rows(path).values())

    try:
        with log_path.open("wb") as log:
            worker = subprocess.Popen(
                [
                    *[sys.executable, "-m", "django"],
                    "process_container_jobs",
                    "--concurrency",
                    str(CONCURRENCY),
                ],
                cwd=ROOT,
                env=dict(sqlite_env(path), CM_WORKER_SETTINGS=json.dumps(worker_settings)),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_until(lambda: running() == CONCURRENCY, 60, "the first jobs to run", worker, log_path)
                with sqlite_locked(path):
                    outage(worker, log_path)
                wait_until(finished, 60, "every job to finish", worker, log_path)
            finally:
                code = stop_worker(worker)
        check_run(
            jobs=jobs,
            rows=sqlite_rows(path),
            starts=start_counter,
            client=docker_client,
            log=log_path,
            code=code,
        )
    finally:
        remove_containers(docker_client, set(jobs))
