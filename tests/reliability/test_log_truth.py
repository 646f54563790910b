"""Logs that are true: followed while the job runs, the job's own bytes, every attempt kept.

The real worker (a subprocess on PostgreSQL) runs jobs on the real engine, network none. Each
test failed on the code before logs were followed (harvested once, after the exit, with the
engine's timestamps): the 40 KB line came back with timestamps spliced in and parsed to None; the
engine's rotation had dropped the first lines; the cap counted 31 bytes of timestamp per line, so
the dropped figure was over four times the truth; nothing was stored until the exit; a retried
job kept its last attempt only; ``duration`` ran from the worker's launch to its harvest.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import docker
import pytest
from docker_executor.state import parse_engine_time

from container_manager.attempts import latest_attempt
from container_manager.console import reading
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import FINISHED_STATUSES, JobStatus, TerminationReason
from container_manager_core.logtext import truncation_notice
from tests.reliability.conftest import make_docker_job
from tests.worker.processes import require_postgres, start_worker, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.django_db(transaction=True)]

WAIT_SECONDS = 60


@contextmanager
def running_worker(settings: dict[str, Any], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    require_postgres()
    with log_path.open("wb") as log:
        worker = start_worker(["--concurrency", "4", "--worker-id", "log-truth"], settings, log=log)
        try:
            yield worker
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=10)


def wait_finished(
    jobs: list[ContainerJob], worker: subprocess.Popen[bytes], log_path: Path, seconds: float = WAIT_SECONDS
) -> None:
    pks = [job.pk for job in jobs]

    def done() -> bool:
        if worker.poll() is not None:
            pytest.fail(f"the worker exited: {log_path.read_text(errors='replace')[-3000:]}")
        return ContainerJob.objects.filter(pk__in=pks, status__in=FINISHED_STATUSES).count() == len(pks)

    wait_for(done, seconds, "the jobs to finish", interval=0.2)
    for job in jobs:
        job.refresh_from_db()


def seq_bytes(count: int) -> bytes:
    return "".join(f"{n}\n" for n in range(1, count + 1)).encode()


def host_with(docker_host: ExecutorHost, **config: Any) -> ExecutorHost:
    docker_host.executor_config = {**docker_host.executor_config, **config}
    docker_host.save()
    return docker_host


def test_a_40kb_json_line_comes_back_byte_exact(
    docker_host: ExecutorHost, test_image: str, worker_settings: dict[str, Any], tmp_path: Path
) -> None:
    # The engine splits a line into messages of 16 KiB; with timestamps each piece got its own.
    value = {"rows": list(range(7000)), "note": "é" * 3}
    line = json.dumps(value)
    assert len(line.encode()) > 40_000
    job = make_docker_job(test_image, f"printf '%s\\n' '{line}'", docker_host)
    with running_worker(worker_settings, tmp_path / "worker.log") as worker:
        wait_finished([job], worker, tmp_path / "worker.log")
    assert job.status == JobStatus.COMPLETED, job.last_error
    assert job.clean_output == line + "\n"
    assert job.stdout_log == line + "\n"
    assert job.parsed_output == value
    attempt = latest_attempt(job)
    assert attempt is not None
    assert attempt.log_text("stdout") == line + "\n"
    assert attempt.stdout_bytes == len(line.encode()) + 1
    assert attempt.stdout_dropped_bytes == 0
    assert attempt.logs_complete


def test_big_output_keeps_its_first_and_last_lines_with_the_exact_dropped_count(
    docker_host: ExecutorHost, test_image: str, worker_settings: dict[str, Any], tmp_path: Path
) -> None:
    # The engine keeps 2 MiB of this job's log (1m x 2): the 9 MB it prints rotates the head
    # away long before the exit. The cap counts the job's own bytes: seq's, no timestamps.
    lines, cap = 1_200_000, 64 * 1024
    host = host_with(docker_host, log_max_size="1m", log_max_file=2, log_cap_bytes=cap)
    printed = seq_bytes(lines) + b"done\n"
    job = make_docker_job(test_image, f"seq 1 {lines}; echo done; echo on-stderr >&2", host)
    with running_worker(worker_settings, tmp_path / "worker.log") as worker:
        wait_finished([job], worker, tmp_path / "worker.log")
    assert job.status == JobStatus.COMPLETED, job.last_error
    half = cap // 2
    dropped = len(printed) - cap
    head, tail = printed[:half], printed[-half:]
    assert job.stdout_dropped_bytes == dropped
    assert job.clean_output.startswith("1\n2\n3\n")
    assert job.clean_output.endswith(f"{lines - 1}\n{lines}\ndone\n")
    assert job.clean_output == head.decode() + truncation_notice(dropped) + tail.decode()
    assert job.stderr_log == "on-stderr\n"
    attempt = latest_attempt(job)
    assert attempt is not None
    assert (attempt.stdout_bytes, attempt.stdout_dropped_bytes) == (len(printed), dropped)
    assert attempt.log_text("stdout") == job.clean_output
    # A live tail reads the head, then the cut's notice and the exact tail.
    first = attempt.log_since("stdout", 0)
    assert (first.text, first.next_offset, first.dropped) == (head.decode(), half, 0)
    rest = attempt.log_since("stdout", first.next_offset)
    assert rest.dropped == dropped
    assert rest.text.endswith(tail.decode())
    assert attempt.log_since("stdout", rest.next_offset).text == ""


def test_five_hundred_megabytes_on_the_default_host_keep_their_first_and_last_lines(
    docker_host: ExecutorHost, test_image: str, worker_settings: dict[str, Any], tmp_path: Path
) -> None:
    # The size, on the host's defaults: the engine keeps 50 MB (10m x 5), so its rotation
    # drops the first lines long before the exit; the worker stores the head as it is printed.
    # Lines of 4 KiB keep the engine's per-message cost (and so the test) short.
    line = b"x" * 4095 + b"\n"
    count = 500 * 1024 * 1024 // len(line)
    printed = b"first\n" + line * count + b"last\n"
    job = make_docker_job(
        test_image,
        f"echo first; yes {line[:-1].decode()} | head -c {count * len(line)}; echo last",
        docker_host,
    )
    with running_worker(worker_settings, tmp_path / "worker.log") as worker:
        wait_finished([job], worker, tmp_path / "worker.log", seconds=240)
    assert job.status == JobStatus.COMPLETED, job.last_error
    cap = 1024 * 1024  # LOG_CAP_BYTES' default
    half, dropped = cap // 2, len(printed) - cap
    assert job.stdout_dropped_bytes == dropped
    assert job.clean_output == printed[:half].decode() + truncation_notice(dropped) + printed[-half:].decode()
    assert job.clean_output.startswith("first\nxxxx")
    assert job.clean_output.endswith("x\nlast\n")
    attempt = latest_attempt(job)
    assert attempt is not None
    assert (attempt.stdout_bytes, attempt.stdout_dropped_bytes) == (len(printed), dropped)


def test_the_cap_counts_the_jobs_own_bytes(
    docker_host: ExecutorHost, test_image: str, worker_settings: dict[str, Any], tmp_path: Path
) -> None:
    # 3.4 MB of short lines: 31 bytes of engine timestamp per line used to count five times over.
    lines = 500_000
    printed = seq_bytes(lines)
    job = make_docker_job(test_image, f"seq 1 {lines}", docker_host)
    with running_worker(worker_settings, tmp_path / "worker.log") as worker:
        wait_finished([job], worker, tmp_path / "worker.log")
    cap = 1024 * 1024
    assert job.stdout_dropped_bytes == len(printed) - cap
    assert len(job.clean_output) == cap + len(truncation_notice(len(printed) - cap))


def test_lines_are_stored_while_the_job_runs(
    docker_host: ExecutorHost, test_image: str, worker_settings: dict[str, Any], tmp_path: Path
) -> None:
    script = "for i in $(seq 1 30); do echo line-$i; done; echo oops >&2; sleep 60"
    job = make_docker_job(test_image, script, docker_host)
    expected = "".join(f"line-{i}\n" for i in range(1, 31))
    with running_worker(worker_settings, tmp_path / "worker.log") as worker:

        def printed_so_far() -> bool:
            attempt = latest_attempt(job)
            return attempt is not None and attempt.log_since("stdout", 0).text == expected

        wait_for(printed_so_far, 20, "the 30 lines to be stored", interval=0.2)
        job.refresh_from_db()
        assert job.status == JobStatus.RUNNING
        attempt = latest_attempt(job)
        assert attempt is not None
        assert attempt.finished_at is None
        assert attempt.log_since("stderr", 0).text == "oops\n"
        assert attempt.stdout_bytes == len(expected)
        # The console's live tail and job_logs read the same storage.
        tail = reading.log_since(job, {}).streams
        assert (tail["stdout"].text, tail["stderr"].text) == (expected, "oops\n")
        assert reading.attempts(job)[0].execution_id == job.execution_id
        job.request_cancel()
        wait_finished([job], worker, tmp_path / "worker.log")
    assert job.termination_reason == TerminationReason.CANCELLED
    assert job.clean_output == expected


def test_a_retried_job_keeps_every_attempt_with_its_exit_code_and_logs(
    docker_host: ExecutorHost, test_image: str, worker_settings: dict[str, Any], tmp_path: Path
) -> None:
    # Each container prints its own hostname (its short id), so each attempt's log is its own.
    job = make_docker_job(test_image, "hostname; echo failing >&2; exit 3", docker_host, max_retries=1)
    with running_worker(worker_settings, tmp_path / "worker.log") as worker:
        wait_finished([job], worker, tmp_path / "worker.log")
    assert (job.status, job.exit_code) == (JobStatus.FAILED, 3)
    attempts = list(job.attempts.order_by("number"))
    assert [a.number for a in attempts] == [1, 2]
    assert len({a.execution_id for a in attempts}) == 2
    for attempt in attempts:
        assert attempt.exit_code == 3
        assert attempt.termination_reason == TerminationReason.NON_ZERO_EXIT
        assert attempt.log_text("stdout") == attempt.execution_id[:12] + "\n"
        assert attempt.log_text("stderr") == "failing\n"
        assert attempt.host_name == docker_host.name
        assert attempt.started_at is not None and attempt.finished_at is not None
    assert attempts[0].finished_at < attempts[1].started_at  # type: ignore[operator]


def test_duration_is_the_containers_run_time_by_the_engines_clock(
    docker_host: ExecutorHost,
    test_image: str,
    worker_settings: dict[str, Any],
    tmp_path: Path,
    docker_client: docker.DockerClient,
) -> None:
    # Kept for the inspect below: no removal after the harvest, no reconcile pass removing it as an
    # orphan, and its own owner, so no other test run's worker on this engine removes it either.
    settings = {
        **worker_settings,
        "CLEANUP_AFTER_HARVEST": False,
        "RECONCILE_INTERVAL": 3600,
        "MANAGER_ID": "log-truth-duration",
    }
    # 300,000 short lines: reading them back from the engine's json-file took seconds, counted.
    job = make_docker_job(test_image, "sleep 0.5; seq 1 300000", docker_host)
    try:
        with running_worker(settings, tmp_path / "worker.log") as worker:
            wait_finished([job], worker, tmp_path / "worker.log")
        state = docker_client.api.inspect_container(job.execution_id)["State"]
    finally:
        docker_client.api.remove_container(job.execution_id, force=True)
    started, finished = parse_engine_time(state["StartedAt"]), parse_engine_time(state["FinishedAt"])
    assert started is not None and finished is not None
    # The engine's own times (its event stream's may follow the state's by some milliseconds).
    close = timedelta(milliseconds=100)
    assert job.duration is not None
    assert abs(job.duration - (finished - started)) < close
    attempt = latest_attempt(job)
    assert attempt is not None and attempt.duration is not None
    assert abs(attempt.duration - (finished - started)) < close
    assert attempt.harvest_seconds is not None and attempt.harvest_seconds >= 0
