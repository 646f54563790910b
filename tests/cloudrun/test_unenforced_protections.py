"""Cloud Run cannot enforce a user, a read-only root, a process limit or network isolation: a job that
needs one is refused, by name, at create_job, in the plugin manager and at the worker's re-check,
unless its host's operator accepts that protection as unenforced (``accept_unenforced``)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from container_manager.conf import app_settings
from container_manager.models import ContainerJob, ExecutorHost
from container_manager_core.errors import PolicyViolationError
from container_manager_core.plugins import PluginManager
from container_manager_core.types import HostSpec, PolicyLimits
from tests.cloudrun.conftest import SCENARIO_SCRIPT, JobMaker
from tests.fakes import FakeCloudRun, cloudrun_host_spec

UNENFORCEABLE = "executor_cannot_enforce"
pytestmark = pytest.mark.cloudrun

NEEDED = {
    "user": "Cloud Run cannot enforce a non-root user, which the job needs (user='1001:1001')",
    "read_only_root": "Cloud Run cannot enforce a read-only root filesystem",
    "pids_limit": "Cloud Run cannot enforce a process limit, which the job needs (pids_limit=",
}


@pytest.fixture(scope="module")
def manager() -> PluginManager:
    return PluginManager()


def unenforceable(manager: PluginManager, host: HostSpec, job: object) -> dict[str, str]:
    found = manager.validate_job(host, job, PolicyLimits())  # type: ignore[arg-type]
    return {v.field or "": v.message for v in found if v.code == UNENFORCEABLE}


def test_without_the_opt_in_every_unenforceable_protection_is_named(
    manager: PluginManager, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    host = cloudrun_host_spec(fake_cloudrun, accept_unenforced=[])
    found = unenforceable(manager, host, make_job())
    assert set(found) == set(NEEDED)
    for field, words in NEEDED.items():
        assert words in found[field]
        assert "list " in found[field] and "in host 'fake-cloudrun''s accept_unenforced" in found[field]


@pytest.mark.parametrize(
    ("accepted", "still_refused"),
    [
        ([], {"user", "read_only_root", "pids_limit"}),
        (["non_root_user"], {"read_only_root", "pids_limit"}),
        (["read_only_root", "pids_limit"], {"user"}),
        (["non_root_user", "read_only_root", "pids_limit"], set()),
    ],
)
def test_only_what_the_host_accepts_is_let_through(
    manager: PluginManager,
    fake_cloudrun: FakeCloudRun,
    make_job: JobMaker,
    accepted: list[str],
    still_refused: set[str],
) -> None:
    host = cloudrun_host_spec(fake_cloudrun, accept_unenforced=accepted)
    assert set(unenforceable(manager, host, make_job())) == still_refused


def test_network_isolation_is_refused_unless_accepted(
    manager: PluginManager, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    job = make_job(network_mode="none")
    found = unenforceable(manager, cloudrun_host_spec(fake_cloudrun), job)
    assert list(found) == ["network_mode"]
    assert found["network_mode"].startswith("Cloud Run cannot enforce network isolation")
    accepting = cloudrun_host_spec(
        fake_cloudrun,
        accept_unenforced=["non_root_user", "read_only_root", "pids_limit", "network_isolation"],
    )
    assert manager.validate_job(accepting, job, PolicyLimits()) == []


def test_a_job_that_asks_for_less_needs_less(
    manager: PluginManager, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    # A writable root (allowed by the limits) is not a protection Cloud Run must enforce.
    host = cloudrun_host_spec(fake_cloudrun, accept_unenforced=["non_root_user", "pids_limit"])
    job = make_job(read_only_root=False)
    assert manager.validate_job(host, job, PolicyLimits(allow_writable_root=True)) == []


def test_launch_is_refused_before_any_call_to_cloud_run(
    manager: PluginManager, fake_cloudrun: FakeCloudRun, make_job: JobMaker
) -> None:
    host = cloudrun_host_spec(fake_cloudrun, accept_unenforced=[])
    with pytest.raises(PolicyViolationError, match="Cloud Run cannot enforce a non-root user"):
        manager.launch_job(host, make_job())
    assert fake_cloudrun.calls == []


# Through the app: create_job and the worker's re-check of a row changed behind its back. ----------


def _host(fake: FakeCloudRun, **config: Any) -> ExecutorHost:
    return ExecutorHost.objects.create(
        name="cloudrun-policy",
        executor_type="cloudrun",
        host_type="api",
        executor_config=dict(cloudrun_host_spec(fake, **config).config),
    )


def _create(host: ExecutorHost) -> ContainerJob:
    return ContainerJob.objects.create_job(
        "docker.io/library/busybox:1.36",
        SCENARIO_SCRIPT,
        docker_host=host,
        memory_limit=512,
        cpu_limit=1.0,
        timeout_seconds=300,
    )


@pytest.mark.django_db
def test_create_job_refuses_on_a_host_without_the_opt_in(fake_cloudrun: FakeCloudRun) -> None:
    host = _host(fake_cloudrun, accept_unenforced=[])
    with pytest.raises(ValidationError) as raised:
        _create(host)
    errors = raised.value.error_dict
    assert [e.code for e in errors["user"]] == [UNENFORCEABLE]
    assert [e.code for e in errors["pids_limit"]] == [UNENFORCEABLE]
    messages = [e.message for e in errors["__all__"]]
    assert any(m.startswith("Cloud Run cannot enforce a read-only root filesystem") for m in messages)
    assert ContainerJob.objects.count() == 0
    assert fake_cloudrun.calls == []


@pytest.mark.django_db
def test_create_job_accepts_with_the_opt_in_and_the_worker_rechecks_it(fake_cloudrun: FakeCloudRun) -> None:
    host = _host(fake_cloudrun, accept_unenforced=["non_root_user", "read_only_root", "pids_limit"])
    job = _create(host)
    assert job.launch_violations(job.to_spec(), host.to_spec(), app_settings()) == []
    # The operator withdraws the opt-in behind clean()'s back: the worker's re-check refuses the job.
    config = dict(host.executor_config)
    config["accept_unenforced"] = ["read_only_root"]
    ExecutorHost.objects.filter(pk=host.pk).update(executor_config=config)
    host.refresh_from_db()
    found = job.launch_violations(job.to_spec(), host.to_spec(), app_settings())
    assert [(v.code, v.field) for v in found] == [
        (UNENFORCEABLE, "user"),
        (UNENFORCEABLE, "pids_limit"),
    ]
