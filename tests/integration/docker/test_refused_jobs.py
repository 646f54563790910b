"""The worker refuses rows changed behind create_job's back before the engine creates anything, and
what the policy accepts runs on the real engine as the policy meant: an explicit non-root group, a
real CPU quota.

Creates are counted with a wrapper around docker-py's one create call, which the plugin always uses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import docker.api.container
import pytest
from django.core.management import call_command

from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import JobStatus, TerminationReason

pytestmark = [pytest.mark.docker, pytest.mark.django_db]

WORKER = {
    "POLL_INTERVAL": 0.05,
    "HEALTH_CHECK_INTERVAL": 60,
    "RECONCILE_INTERVAL": 600,
    "STOP_GRACE_SECONDS": 1,
    "REQUIRE_USER_NAMESPACES": False,  # the local engine does not remap users
}


@pytest.fixture
def creates(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Record every create request sent to any engine during the test."""
    sent: list[dict[str, Any]] = []
    original = docker.api.container.ContainerApiMixin.create_container_from_config

    def counting(self: Any, config: dict[str, Any], name: str | None = None, **kwargs: Any) -> Any:
        sent.append(config)
        return original(self, config, name, **kwargs)

    monkeypatch.setattr(docker.api.container.ContainerApiMixin, "create_container_from_config", counting)
    yield sent


@pytest.fixture
def engine(settings: Any, test_image: str, cleanup: None) -> ExecutorHost:
    settings.CONTAINER_MANAGER = dict(WORKER)
    host = ExecutorHost(
        name="refusals",
        executor_type="docker",
        host_type="unix",
        connection_string="unix:///var/run/docker.sock",
        executor_config={"default_network": "none"},  # test containers stay off the network
    )
    host.full_clean()
    host.save()
    return host


# Each row passes create_job, then is changed the way the audit changed it.
BEHIND_THE_BACK = {
    "cpu that rounds to unlimited": ({"cpu_limit": 1e-6}, {}, "cpu_limit_too_low"),
    "uid 0 with zeros": ({"user": "0000:0000"}, {}, "user_uid_too_low"),
    "the root group": ({"user": "1001:0"}, {}, "user_gid_root"),
    "a user name": ({"user": "nobody"}, {}, "user_invalid"),
    "an image id": (
        {"docker_image": "sha256:" + "a" * 64},
        {"allowed_registries": ["docker.io"]},
        "image_id_not_allowed",
    ),
    "a short image id": (
        {"docker_image": "5089cb476207"},
        {"allowed_registries": ["docker.io"]},
        "image_id_not_allowed",
    ),
    "another container's network": ({}, {"default_network": "container:victim"}, "shared_network_namespace"),
    "unbounded engine logs": ({}, {"log_max_size": "1000000g"}, "log_limits_invalid"),
    "no init": ({}, {"use_init": False}, "init_disabled"),
    "a billion retries": ({"max_retries": 1_000_000_000}, {}, "max_retries_too_high"),
    "a 200 KB variable": ({"environment_overrides": {"BIG": "x" * 200_000}}, {}, "env_var_too_large"),
    "a 300 KB command": ({"command": "echo " + "x" * 300_000}, {}, "command_too_large"),
}


# Refusals of the host's own settings, which every job on it would inherit.
HOST_SETTING_CODES = frozenset({"shared_network_namespace", "log_limits_invalid", "init_disabled"})


@pytest.mark.parametrize("name", sorted(BEHIND_THE_BACK))
def test_a_row_changed_behind_create_jobs_back_is_refused_before_any_create(
    name: str, engine: ExecutorHost, test_image: str, creates: list[dict[str, Any]]
) -> None:
    job_changes, host_changes, code = BEHIND_THE_BACK[name]
    job = ContainerJob.objects.create_job(test_image, "true", docker_host=engine)
    ContainerJob.objects.filter(pk=job.pk).update(**job_changes)
    if host_changes:
        ExecutorHost.objects.filter(pk=engine.pk).update(
            executor_config={**engine.executor_config, **host_changes}
        )
    call_command("process_container_jobs", once=True)
    job.refresh_from_db()
    if code in HOST_SETTING_CODES:
        # A host whose settings are refused is the host's fault, not the job's: the host is marked
        # unhealthy with the reason and its jobs wait, unlaunched, for the host to be fixed.
        engine.refresh_from_db()
        assert (job.status, job.attempt, engine.healthy) == (JobStatus.PENDING, 0, False)
        (key,) = host_changes
        assert key in engine.last_health_error  # the reason names the setting to fix
    else:
        assert (job.status, job.termination_reason) == (JobStatus.FAILED, TerminationReason.LAUNCH_FAILED)
        assert f"[{code}]" in job.last_error
        assert "x" * 100 not in job.last_error  # sizes are named, values are not quoted
    assert creates == []


def run(engine: ExecutorHost, image: str, script: str, **options: Any) -> ContainerJob:
    job = ContainerJob.objects.create_job(image, script, docker_host=engine, **options)
    call_command("process_container_jobs", once=True)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED, (job.termination_reason, job.last_error, job.stderr_log)
    return job


@pytest.mark.parametrize("user", ["1001", "00001001", "65534"])
def test_a_uid_alone_runs_in_its_own_group_never_group_0(
    user: str, engine: ExecutorHost, test_image: str, creates: list[dict[str, Any]]
) -> None:
    job = run(engine, test_image, "id", user=user)
    uid = int(user)
    assert job.clean_output.strip() == f"uid={uid} gid={uid} groups={uid}"
    assert [c["User"] for c in creates] == [f"{uid}:{uid}"]


def test_a_job_at_the_cpu_floor_has_a_real_cpu_quota(
    engine: ExecutorHost, test_image: str, creates: list[dict[str, Any]]
) -> None:
    job = run(
        engine,
        test_image,
        "cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        cpu_limit=0.01,
    )
    quota = job.clean_output.split()[0]
    assert quota not in ("max", "-1")
    assert int(quota) >= 1000  # microseconds per period: the kernel's smallest quota
    assert len(creates) == 1
