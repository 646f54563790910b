"""Placement's rules outside the claim: budgets, the create_job refusal, the size the health check
stores, and the overcommit settings."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError

from container_manager.conf import AppSettings
from container_manager.health import check_host
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.placement import Budget, Demand, Load, no_host_fits
from container_manager.states import JobStatus
from tests.factories import make_host, make_job


def floating(memory_limit: int) -> ContainerJob:
    """Queue a job free to run on any mock host."""
    return ContainerJob.objects.create_job("busybox", "true", executor_type="mock", memory_limit=memory_limit)


def host(name: str = "h", **fields: Any) -> ExecutorHost:
    return ExecutorHost(
        name=name, executor_type="mock", max_concurrent_jobs=fields.pop("slots", 10), **fields
    )


def test_the_override_wins_over_the_engine_and_the_overcommit_scales_both() -> None:
    settings = AppSettings(MEMORY_OVERCOMMIT=1.5, CPU_OVERCOMMIT=2.0)
    engine = Budget.of(host(engine_memory_mb=1000, engine_cpus=2), settings)
    assert (engine.memory_mb, engine.cpus) == (1500, 4.0)
    both = Budget.of(
        host(engine_memory_mb=1000, engine_cpus=2, memory_capacity_mb=100, cpu_capacity=0.5), settings
    )
    assert (both.memory_mb, both.cpus) == (150, 1.0)
    assert Budget.of(host(), settings) == Budget(slots=10, memory_mb=None, cpus=None)


def test_a_budget_admits_a_job_only_within_slots_memory_and_cpus() -> None:
    budget = Budget(slots=2, memory_mb=1000, cpus=1.0)
    assert budget.admits(Load(1, 600, 0.5), Demand(400, 0.5))
    assert not budget.admits(Load(1, 600, 0.5), Demand(401, 0.5))
    assert not budget.admits(Load(1, 600, 0.5), Demand(400, 0.51))
    assert not budget.admits(Load(2, 0, 0), Demand(1, 0.01))
    assert Budget(slots=1, memory_mb=None, cpus=None).holds(Demand(10**9, 10**6))


def test_no_host_fits_names_the_largest_host_and_the_limit_to_lower() -> None:
    settings = AppSettings()
    hosts = [
        host("small", memory_capacity_mb=512, cpu_capacity=1),
        host("large", memory_capacity_mb=1024, cpu_capacity=1),
    ]
    violation = no_host_fits(Demand(2048, 1), hosts, settings, kind="mock")
    assert violation is not None and violation.code == "no_host_fits"
    assert violation.field == "memory_limit_mb"
    assert "the largest mock host, 'large', holds 1024 MB and 4 CPUs" in violation.message
    assert no_host_fits(Demand(1024, 1), hosts, settings, kind="mock") is None
    assert no_host_fits(Demand(2048, 1), [], settings, kind="mock") is None  # No host yet: it waits.
    assert no_host_fits(Demand(2048, 1), [*hosts, host("cloud")], settings, kind="mock") is None


@pytest.mark.django_db
def test_create_job_refuses_a_job_no_host_could_ever_hold() -> None:
    make_host("small", memory_capacity_mb=512)
    make_host("large", memory_capacity_mb=1024, healthy=False)  # Down now, but it may come back.
    assert floating(1024).status == JobStatus.PENDING
    with pytest.raises(ValidationError) as raised:
        floating(2048)
    (error,) = raised.value.error_dict["memory_limit"]
    assert error.code == "no_host_fits"
    assert "'large', holds 1024 MB" in error.message
    assert ContainerJob.objects.count() == 1


@pytest.mark.django_db
def test_a_pinned_job_must_fit_its_own_host() -> None:
    small = make_host("small", memory_capacity_mb=512)
    make_host("large", memory_capacity_mb=4096)
    with pytest.raises(ValidationError, match="its host, 'small', holds 512 MB"):
        make_job(host=small, memory_limit=1024)


@pytest.mark.django_db
def test_an_inactive_host_does_not_count_and_history_stays_editable() -> None:
    small = make_host("small", memory_capacity_mb=512)
    job = floating(512)
    ContainerJob.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED)
    make_host("gone", memory_capacity_mb=4096, is_active=False)
    with pytest.raises(ValidationError, match="No host can ever run"):
        floating(1024)
    ExecutorHost.objects.filter(pk=small.pk).update(memory_capacity_mb=256)
    job.refresh_from_db()
    job.full_clean()  # A finished job is history: it need not fit any more.


@pytest.mark.django_db
def test_the_health_check_stores_the_engines_size_and_keeps_it_while_down() -> None:
    checked = make_host(executor_config={"memory_mb": 2048, "cpus": 3})
    check_host(checked)
    checked.refresh_from_db()
    assert (checked.engine_memory_mb, checked.engine_cpus) == (2048, 3.0)
    ExecutorHost.objects.filter(pk=checked.pk).update(
        executor_config={"memory_mb": 2048, "unhealthy": "disk full"}
    )
    checked.refresh_from_db()
    check_host(checked)
    checked.refresh_from_db()
    assert not checked.healthy and (checked.engine_memory_mb, checked.engine_cpus) == (2048, 3.0)
    ExecutorHost.objects.filter(pk=checked.pk).update(executor_config={})
    checked.refresh_from_db()
    check_host(checked)
    checked.refresh_from_db()
    assert (checked.engine_memory_mb, checked.engine_cpus) == (None, None)


@pytest.mark.django_db
def test_a_capacity_override_must_be_a_positive_finite_number() -> None:
    bad = make_host("bad")
    for value in (float("nan"), float("inf"), 0.0, -1.0):
        bad.cpu_capacity = value
        with pytest.raises(ValidationError) as raised:
            bad.full_clean()
        assert "cpu_capacity" in raised.value.error_dict
    bad.cpu_capacity, bad.memory_capacity_mb = 2.0, 0
    with pytest.raises(ValidationError) as raised:
        bad.full_clean()
    assert set(raised.value.error_dict) == {"memory_capacity_mb"}


@pytest.mark.parametrize("name", ["MEMORY_OVERCOMMIT", "CPU_OVERCOMMIT"])
@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "2", True])
def test_an_overcommit_ratio_must_be_a_positive_finite_number(name: str, value: object) -> None:
    with pytest.raises(ImproperlyConfigured, match=name):
        AppSettings(**{name: value})  # type: ignore[arg-type]
