"""A fault tied to one job ends that job alone, with its reason, and the worker goes on with the others.

The poisoned rows are stored as an older release, a raw SQL fix or a buggy script would store them:
``create_job`` validates, so each poison is written over a valid job with ``QuerySet.update``.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from mock_executor.plugin import MockExecutor

from container_manager.models import ContainerJob, EnvironmentVariableTemplate, ExecutorHost
from container_manager.states import JobStatus
from tests.worker.conftest import FAST, make_job
from tests.worker.processes import start_worker, wait_for

# A row that cannot become a spec: (what is stored over the valid job, words its last_error must hold).
POISONS: dict[str, tuple[Callable[[ContainerJob], None], str]] = {
    "environment overrides stored as a JSON list": (
        lambda job: store(job, environment_overrides=["A=1"]),
        "AttributeError",
    ),
    "environment overrides stored as a JSON string": (
        lambda job: store(job, environment_overrides="A=1"),
        "AttributeError",
    ),
    "a network entry without network_name": (
        lambda job: store(job, network_configuration=[{"aliases": ["db"]}]),
        "KeyError: 'network_name'",
    ),
    "a network entry that is a string": (
        lambda job: store(job, network_configuration=["backend"]),
        "TypeError",
    ),
    "network configuration stored as an object": (
        lambda job: store(job, network_configuration={"network_name": "backend"}),
        "TypeError",
    ),
    "an exec command that is not JSON": (
        lambda job: store(job, command_form="exec", command="echo [unclosed"),
        "cannot be turned into a spec",
    ),
    "an environment template that no longer parses": (
        lambda job: store(
            job,
            environment_template=EnvironmentVariableTemplate.objects.create(
                name=f"broken-{job.pk}", environment_variables_text="not a variable line"
            ),
        ),
        "cannot be turned into a spec",
    ),
}
# An exit code no integer column holds: the result cannot be stored as it is (a DataError on
# PostgreSQL, an OverflowError from SQLite's driver).
UNSTORABLE_EXIT = {"MOCK_EXIT_CODE": 2**70, "MOCK_STDOUT": "lost"}
HEALTHY = 3


def store(job: ContainerJob, **fields: Any) -> None:
    ContainerJob.objects.filter(pk=job.pk).update(**fields)


def queue_poisoned_and_healthy(host: ExecutorHost) -> tuple[list[ContainerJob], dict[str, ContainerJob]]:
    """Queue healthy jobs between the poisoned ones (poisoned first in priority order)."""
    healthy = [make_job(host, name=f"healthy {n}", env={"MOCK_STDOUT": f"ok {n}"}) for n in range(HEALTHY)]
    poisoned: dict[str, ContainerJob] = {}
    for name, (poison, _words) in POISONS.items():
        job = make_job(host, name=name, priority=10)
        poison(job)
        poisoned[name] = job
    poisoned["unstorable result"] = make_job(host, name="unstorable", env=UNSTORABLE_EXIT, priority=10)
    return healthy, poisoned


def assert_each_fault_ended_its_job_alone(
    healthy: list[ContainerJob], poisoned: dict[str, ContainerJob]
) -> None:
    for job in healthy:
        job.refresh_from_db()
        assert (job.status, job.exit_code, job.attempt, job.last_error) == (JobStatus.COMPLETED, 0, 1, "")
        assert job.clean_output.startswith("ok ")
    for name, job in poisoned.items():
        job.refresh_from_db()
        assert job.status == JobStatus.FAILED, name
        assert job.lease_expires_at is None and job.completed_at is not None, name
        assert job.attempt == 1 and job.retry_count == 0, name  # Failed once, never retried.
        if name == "unstorable result":
            assert job.termination_reason == "result_unstorable"
            assert "could not be stored" in job.last_error
            assert str(2**70) in job.last_error  # What could not be stored is still told.
            assert job.exit_code is None and job.stdout_log == ""
        else:
            assert job.termination_reason == "invalid_spec", name
            assert POISONS[name][1] in job.last_error, (name, job.last_error)
            assert job.execution_id == "", name  # Never launched.


@pytest.mark.django_db
def test_poisoned_rows_fail_alone_and_the_healthy_jobs_beside_them_run(
    host: ExecutorHost, fast_worker: MockExecutor
):
    healthy, poisoned = queue_poisoned_and_healthy(host)

    call_command("process_container_jobs", once=True, concurrency=2)

    assert_each_fault_ended_its_job_alone(healthy, poisoned)
    # Only the healthy jobs and the one whose result was lost ever reached the executor.
    assert fast_worker.launch_count == HEALTHY + 1


@pytest.mark.django_db
def test_a_result_that_cannot_be_stored_fails_its_job_alone(host: ExecutorHost, fast_worker: MockExecutor):
    healthy = [make_job(host, name=f"healthy {n}", env={"MOCK_STDOUT": f"ok {n}"}) for n in range(HEALTHY)]
    unstorable = make_job(host, name="unstorable", env=UNSTORABLE_EXIT, priority=10)

    call_command("process_container_jobs", once=True, concurrency=2)

    assert_each_fault_ended_its_job_alone(healthy, {"unstorable result": unstorable})
    assert fast_worker.launch_count == HEALTHY + 1


@pytest.mark.django_db
def test_a_poisoned_row_does_not_stop_a_later_worker_either(host: ExecutorHost):
    bad = make_job(host, priority=5)
    store(bad, environment_overrides=["A=1"])
    call_command("process_container_jobs", once=True)
    good = make_job(host)
    call_command("process_container_jobs", once=True)
    bad.refresh_from_db()
    good.refresh_from_db()
    assert (bad.status, bad.termination_reason) == (JobStatus.FAILED, "invalid_spec")
    assert good.status == JobStatus.COMPLETED


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_process_outlives_every_poisoned_row(host: ExecutorHost, tmp_path: Path):
    healthy, poisoned = queue_poisoned_and_healthy(host)
    every = [*healthy, *poisoned.values()]

    def all_finished() -> bool:
        return (
            not ContainerJob.objects.filter(pk__in=[j.pk for j in every])
            .exclude(status__in=[JobStatus.COMPLETED, JobStatus.FAILED])
            .exists()
        )

    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = start_worker(["--concurrency", "2"], FAST, log=out)
        try:
            wait_for(all_finished, 60, "every job to finish")
            assert worker.poll() is None, log.read_text()  # Still serving after every fault.
            late = make_job(host, name="late")
            wait_for(lambda: ContainerJob.objects.get(pk=late.pk).status == JobStatus.COMPLETED, 30, "late")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=20) == 0, log.read_text()
        finally:
            worker.kill()
    assert_each_fault_ended_its_job_alone(healthy, poisoned)
    text = log.read_text()
    assert "Traceback" not in text, text


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_once_worker_process_ends_normally_despite_poisoned_rows(host: ExecutorHost, tmp_path: Path):
    healthy, poisoned = queue_poisoned_and_healthy(host)
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = start_worker(["--once", "--concurrency", "3"], FAST, log=out)
        try:
            assert worker.wait(timeout=60) == 0, log.read_text()
        finally:
            worker.kill()
    assert_each_fault_ended_its_job_alone(healthy, poisoned)
