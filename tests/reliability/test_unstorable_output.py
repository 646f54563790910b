"""Output that is not storable text (NUL bytes, invalid UTF-8, JSON escapes of NUL) ends no worker.

The real worker runs jobs on the real engine next to healthy ones: on PostgreSQL as a separate
process that must stay alive, on SQLite in process (``--once``; a subprocess cannot share SQLite's
in-memory test database). The poisoned jobs finish with their output stored, every replaced byte
counted; the healthy ones complete, each started once; no container is left behind.

Checked against the code before output was made storable, on PostgreSQL: the worker retried the
NUL job's save for ever ("PostgreSQL text fields cannot contain NUL (0x00) bytes"), the exited
healthy jobs behind it stayed ``running``, and the wait below timed out.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import docker
import pytest
from django.core.management import call_command
from django.db import connection

from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import FINISHED_STATUSES, JobStatus
from container_manager_core.logtext import NUL_REPLACEMENT
from tests.reliability.conftest import StartCounter, make_docker_job, managed_containers
from tests.worker.processes import start_worker

pytestmark = [pytest.mark.docker, pytest.mark.django_db(transaction=True)]

# The worker reads the job's own bytes (attached to its output, not the engine's json-file copy,
# which writes invalid UTF-8 as U+FFFD): the NUL and \377 on stdout, the two NULs on stderr.
BINARY = r"printf 'a\000b\377c'; printf 'x\000y\000' >&2"
# Storable as text, but a JSON document whose strings decode to NUL and to a lone surrogate,
# which PostgreSQL's jsonb refuses.
JSON_ESCAPES = r"""printf 'hello\n{"a":"\\u0000","b":"x\\ud800y"}\n'"""
# Not JSON at all, though Python's json module reads it: jsonb refuses NaN.
NOT_A_NUMBER = "echo NaN"
HEALTHY = 3
WAIT_SECONDS = 60


def _run_worker(jobs: list[ContainerJob], worker_settings: dict[str, Any], log_path: Path) -> None:
    """Run the real worker until every job has finished; on PostgreSQL also check it stays alive."""
    pks = [job.pk for job in jobs]
    finished = ContainerJob.objects.filter(pk__in=pks, status__in=FINISHED_STATUSES)
    if connection.vendor != "postgresql":
        call_command("process_container_jobs", once=True)
        return
    with log_path.open("wb") as log:
        worker = start_worker(["--concurrency", "4", "--worker-id", "storable"], worker_settings, log=log)
        try:
            deadline = time.monotonic() + WAIT_SECONDS
            while finished.count() < len(jobs):
                if worker.poll() is not None or time.monotonic() > deadline:
                    states = list(
                        ContainerJob.objects.filter(pk__in=pks).values_list("name", "status", "last_error")
                    )
                    pytest.fail(
                        f"worker exit code {worker.poll()}, jobs {states}\n"
                        + log_path.read_text(errors="replace")[-3000:]
                    )
                time.sleep(0.2)
            time.sleep(1)  # Long enough for a worker about to crash on what it just saved.
            assert worker.poll() is None, log_path.read_text(errors="replace")[-3000:]
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
        assert worker.returncode == 0, log_path.read_text(errors="replace")[-3000:]


def test_nul_and_invalid_utf8_output_is_stored_and_ends_nothing_else(
    docker_host: ExecutorHost,
    test_image: str,
    start_counter: StartCounter,
    worker_settings: dict[str, Any],
    docker_client: docker.DockerClient,
    tmp_path: Path,
):
    binary = make_docker_job(test_image, BINARY, docker_host, name="binary")
    escapes = make_docker_job(test_image, JSON_ESCAPES, docker_host, name="json-escapes")
    nan = make_docker_job(test_image, NOT_A_NUMBER, docker_host, name="nan")
    healthy = [
        make_docker_job(test_image, f"echo ok-{i}", docker_host, name=f"ok-{i}") for i in range(HEALTHY)
    ]
    jobs = [binary, escapes, nan, *healthy]

    _run_worker(jobs, worker_settings, tmp_path / "worker.log")

    for job in jobs:
        job.refresh_from_db()
    assert (binary.status, binary.exit_code, binary.last_error) == (JobStatus.COMPLETED, 0, "")
    assert binary.clean_output == f"a{NUL_REPLACEMENT}b\ufffdc"
    assert binary.stdout_log.endswith(binary.clean_output)
    assert binary.stderr_log.endswith(f"x{NUL_REPLACEMENT}y{NUL_REPLACEMENT}")
    assert (binary.stdout_replaced_bytes, binary.stderr_replaced_bytes) == (2, 2)
    assert binary.parsed_output is None

    assert escapes.status == JobStatus.COMPLETED
    # A lone surrogate is taken as the three invalid UTF-8 bytes it would be, each replaced.
    assert escapes.parsed_output == {"a": NUL_REPLACEMENT, "b": "x" + "\ufffd" * 3 + "y"}
    assert escapes.clean_output == 'hello\n{"a":"\\u0000","b":"x\\ud800y"}\n'  # the text itself was fine
    assert (escapes.stdout_replaced_bytes, escapes.stderr_replaced_bytes) == (0, 0)

    assert (nan.status, nan.clean_output, nan.parsed_output) == (JobStatus.COMPLETED, "NaN\n", None)

    for i, job in enumerate(healthy):
        assert (job.status, job.clean_output, job.parsed_output) == (JobStatus.COMPLETED, f"ok-{i}\n", None)
        assert (job.stdout_replaced_bytes, job.stderr_replaced_bytes) == (0, 0)

    ids = {str(job.pk) for job in jobs}
    deadline = time.monotonic() + 15
    while managed_containers(docker_client, ids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert managed_containers(docker_client, ids) == []
    starts = start_counter.close()
    assert {job.name: starts[str(job.pk)] for job in jobs} == {job.name: 1 for job in jobs}
