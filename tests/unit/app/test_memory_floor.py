"""The memory floor: below the engine's minimum (Docker refuses less than 6 MB) a job is refused with
``memory_limit_too_low`` at create_job, in the admin form and at the worker's re-check, by one rule."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError

from container_manager.conf import app_settings
from container_manager.forms import ContainerJobForm
from container_manager.models import ContainerJob, ExecutorHost

IMAGE = "docker.io/library/busybox:1.36"


def create_job_codes(host: ExecutorHost, memory: int) -> list[str]:
    try:
        ContainerJob.objects.create_job(IMAGE, "true", docker_host=host, memory_limit=memory)
    except ValidationError as exc:
        return [e.code for e in exc.error_dict.get("memory_limit", []) if e.code]
    return []


def form_codes(host: ExecutorHost, memory: int) -> list[str]:
    template = ContainerJobForm(instance=ContainerJob(docker_host=host, docker_image=IMAGE, command="true"))
    data: dict[str, Any] = {name: template[name].value() for name in template.fields}
    data = {k: v for k, v in data.items() if v is not None}
    data.update(memory_limit=memory, cpu_limit=0.5, pids_limit=64, timeout_seconds=60, user="1001:1001")
    data.update(environment_overrides=json.dumps({}), network_configuration="[]")
    form = ContainerJobForm(data=data)
    if form.is_valid():
        return []
    return [e.code for e in form.errors.as_data().get("memory_limit", []) if e.code]


def worker_codes(host: ExecutorHost, memory: int) -> list[str]:
    job = ContainerJob.objects.create_job(IMAGE, "true", docker_host=host, memory_limit=64)
    ContainerJob.objects.filter(pk=job.pk).update(memory_limit=memory)  # behind create_job's back
    job.refresh_from_db()
    violations = job.launch_violations(job.to_spec(), host.to_spec(), app_settings())
    return [v.code for v in violations if v.field == "memory_limit_mb"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("memory", "codes"), [(1, ["memory_limit_too_low"]), (5, ["memory_limit_too_low"]), (6, [])]
)
def test_every_entry_point_refuses_memory_below_the_floor(
    host: ExecutorHost, memory: int, codes: list[str]
) -> None:
    assert create_job_codes(host, memory) == codes
    assert form_codes(host, memory) == codes
    assert worker_codes(host, memory) == codes


@pytest.mark.django_db
def test_the_floor_is_a_setting(settings: Any, host: ExecutorHost) -> None:
    settings.CONTAINER_MANAGER = {"MIN_MEMORY_MB": 128}
    assert create_job_codes(host, 64) == ["memory_limit_too_low"]
    assert create_job_codes(host, 128) == []


def test_a_floor_above_the_default_memory_is_rejected(settings: Any) -> None:
    settings.CONTAINER_MANAGER = {"MIN_MEMORY_MB": 512}
    with pytest.raises(ImproperlyConfigured, match=r"MIN_MEMORY_MB.*above.*DEFAULT_MEMORY_LIMIT_MB"):
        app_settings()
