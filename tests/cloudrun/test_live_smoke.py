"""The fidelity scenarios against a real Cloud Run project: opt-in, so drift from the service shows.

Run it with credentials in Google's auth chain (``gcloud auth application-default login`` or
``GOOGLE_APPLICATION_CREDENTIALS``) and::

    CM_CLOUDRUN_LIVE_PROJECT=my-project CM_CLOUDRUN_LIVE_REGION=europe-west1 \\
        .venv/bin/python -m pytest -m cloudrun_live tests/cloudrun/test_live_smoke.py -p no:randomly

It creates and deletes a few one-task jobs (billed to the project). Without the variables or the
credentials every test is skipped with the reason; ``scripts/test`` (and so CI) deselects the
``cloudrun_live`` marker, so these never count in the suite's pass count.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator

import pytest
from cloudrun_executor.plugin import CloudRunExecutor

from container_manager_core.errors import ImagePullFailed
from container_manager_core.types import Command, HostSpec, JobSpec
from tests.cloudrun.conftest import make_scenario_job, wait_exited

pytestmark = pytest.mark.cloudrun_live

PROJECT = os.environ.get("CM_CLOUDRUN_LIVE_PROJECT", "")
REGION = os.environ.get("CM_CLOUDRUN_LIVE_REGION", "europe-west1")
# Real Cloud Run can pull from Docker Hub; the scenario script needs only a shell.
IMAGE = os.environ.get("CM_CLOUDRUN_LIVE_IMAGE", "docker.io/library/busybox:1.36")
# Real runs take minutes: containers start in seconds and logs arrive up to a minute late.
EXIT_TIMEOUT = 600.0


def _credentials_problem() -> str | None:
    if not PROJECT:
        return "set CM_CLOUDRUN_LIVE_PROJECT (and CM_CLOUDRUN_LIVE_REGION) to run against a real project"
    try:
        import google.auth

        google.auth.default()
    except Exception as exc:
        return f"no Google credentials in the auth chain ({type(exc).__name__}: {exc})"
    return None


@pytest.fixture(scope="module")
def live_host() -> HostSpec:
    problem = _credentials_problem()
    if problem is not None:
        pytest.skip(f"Live Cloud Run smoke test: {problem}.")
    return HostSpec(
        name="cloudrun-live",
        executor_type="cloudrun",
        config={
            "project": PROJECT,
            "region": REGION,
            "job_name_prefix": "cmsmoke",
            "accept_unenforced": ["non_root_user", "read_only_root", "pids_limit"],
        },
    )


@pytest.fixture
def live(live_host: HostSpec) -> Iterator[tuple[CloudRunExecutor, list[str]]]:
    executor: CloudRunExecutor = CloudRunExecutor()
    launched: list[str] = []
    yield executor, launched
    for execution_id in launched:
        with contextlib.suppress(Exception):  # best effort: the project is someone's own
            executor.cleanup(live_host, execution_id)


def _job(**scenario: object) -> JobSpec:
    return make_scenario_job(image=IMAGE, **scenario)  # type: ignore[arg-type]


def _run(live: tuple[CloudRunExecutor, list[str]], host: HostSpec, job: JobSpec) -> str:
    executor, launched = live
    execution = executor.launch_job(host, job)
    launched.append(execution.execution_id)
    assert executor.wait_for_exit(host, execution.execution_id, EXIT_TIMEOUT)
    return execution.execution_id


def test_output_and_the_final_json_line_arrive(
    live: tuple[CloudRunExecutor, list[str]], live_host: HostSpec
) -> None:
    executor, _ = live
    lines = "\n".join([*(f"row {n}" for n in range(20)), '{"severity": "NOTICE", "rows": 20}'])
    execution_id = _run(live, live_host, _job(stdout=lines + "\n"))
    status = executor.check_status(live_host, execution_id)
    assert (status.exit_code, status.error) == (0, None)
    stdout = executor.get_logs(live_host, execution_id, timestamps=False).stdout.splitlines()
    assert stdout[:20] == [f"row {n}" for n in range(20)]
    assert json.loads(stdout[-1]) == {"severity": "NOTICE", "rows": 20}


def test_an_exit_code_is_reported(live: tuple[CloudRunExecutor, list[str]], live_host: HostSpec) -> None:
    executor, _ = live
    execution_id = _run(live, live_host, _job(stderr="failing\n", exit_code=3))
    assert executor.check_status(live_host, execution_id).exit_code == 3


def test_out_of_memory_is_reported(live: tuple[CloudRunExecutor, list[str]], live_host: HostSpec) -> None:
    executor, _ = live
    # Files in Cloud Run's in-memory filesystem count against the memory limit.
    script = "dd if=/dev/zero of=/tmp/fill bs=1M count=900; sleep 5"
    job = make_scenario_job(image=IMAGE, tmpfs=(), command=Command.shell(script))
    status = executor.check_status(live_host, _run(live, live_host, job))
    assert status.oom_killed


def test_a_cancel_reads_as_cancelled(live: tuple[CloudRunExecutor, list[str]], live_host: HostSpec) -> None:
    executor, launched = live
    execution = executor.launch_job(live_host, _job(duration=300))
    launched.append(execution.execution_id)
    assert executor.stop_job(live_host, execution.execution_id, grace_seconds=1)
    status = wait_exited(executor, live_host, execution.execution_id, timeout=EXIT_TIMEOUT)
    assert status.error == "cancelled"


def test_a_missing_image_is_an_image_failure_and_leaves_no_job(
    live: tuple[CloudRunExecutor, list[str]], live_host: HostSpec
) -> None:
    executor, _ = live
    with pytest.raises(ImagePullFailed):
        executor.launch_job(live_host, _job(image=f"{REGION}-docker.pkg.dev/{PROJECT}/absent/absent:1"))
    assert all(not e for _, e in executor.list_executions(live_host))
