"""Placement by resources: what a host may hold, what a job asks for, and whether it can ever fit.

A host holds at once at most ``max_concurrent_jobs`` jobs, and jobs whose memory and CPU limits
add up to at most its capacity times the overcommit settings (``MEMORY_OVERCOMMIT``,
``CPU_OVERCOMMIT``). Its capacity is the host's override (``memory_capacity_mb``,
``cpu_capacity``) or else what its engine reported at the last health check (``engine_memory_mb``,
``engine_cpus``); a resource neither gives is unbounded (a Cloud Run host: each job gets its own
machine, within the plugin's per-job limits).

The claim applies :meth:`Budget.admits` to every job it places (``worker/placing.py``), and
``create_job`` and the claim both refuse a job no host could hold even when idle with
:func:`no_host_fits`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from container_manager_core.types import Violation

if TYPE_CHECKING:
    from container_manager.conf import AppSettings
    from container_manager.models import ContainerJob, ExecutorHost

# Sums of float CPU limits (0.1 + 0.2) must not refuse a job that fits exactly.
_SLACK: Final = 1e-9
NO_HOST_FITS: Final = "no_host_fits"


@dataclass(frozen=True)
class Demand:
    """What one job holds on its host while it is launching or running."""

    memory_mb: float
    cpus: float

    @classmethod
    def of(cls, job: ContainerJob) -> Demand:
        # A row without a limit (changed behind create_job's back) is refused by the policy at launch.
        return cls(float(job.memory_limit or 0), float(job.cpu_limit or 0))


@dataclass
class Load:
    """What a host's active jobs (launching and running) hold together."""

    jobs: int = 0
    memory_mb: float = 0.0
    cpus: float = 0.0

    def add(self, demand: Demand) -> None:
        self.jobs += 1
        self.memory_mb += demand.memory_mb
        self.cpus += demand.cpus


def _scaled(capacity: float | None, ratio: float) -> float | None:
    if capacity is None or not math.isfinite(capacity):
        return None if capacity is None else 0.0  # A non-finite override admits nothing.
    return capacity * ratio


def _within(limit: float | None, total: float) -> bool:
    return limit is None or total <= limit + _SLACK


@dataclass(frozen=True)
class Budget:
    """What a host may hold at once: job slots, memory in MB and CPUs (None: unbounded)."""

    slots: int
    memory_mb: float | None
    cpus: float | None

    @classmethod
    def of(cls, host: ExecutorHost, settings: AppSettings) -> Budget:
        """Return ``host``'s budget: its override, else its engine's size, times the overcommit."""
        memory = host.memory_capacity_mb if host.memory_capacity_mb is not None else host.engine_memory_mb
        cpus = host.cpu_capacity if host.cpu_capacity is not None else host.engine_cpus
        return cls(
            slots=host.max_concurrent_jobs,
            memory_mb=_scaled(None if memory is None else float(memory), settings.MEMORY_OVERCOMMIT),
            cpus=_scaled(cpus, settings.CPU_OVERCOMMIT),
        )

    def admits(self, load: Load, demand: Demand) -> bool:
        """Say whether a job asking ``demand`` fits beside the active jobs holding ``load``."""
        return (
            load.jobs + 1 <= self.slots
            and _within(self.memory_mb, load.memory_mb + demand.memory_mb)
            and _within(self.cpus, load.cpus + demand.cpus)
        )

    def holds(self, demand: Demand) -> bool:
        """Say whether a job asking ``demand`` fits on this host when the host is idle."""
        return self.admits(Load(), demand)

    def describe(self) -> str:
        memory = "unbounded memory" if self.memory_mb is None else f"{self.memory_mb:g} MB"
        cpus = "unbounded CPUs" if self.cpus is None else f"{self.cpus:g} CPUs"
        return f"{memory} and {cpus}"


def no_host_fits(
    demand: Demand, hosts: Sequence[ExecutorHost], settings: AppSettings, *, kind: str
) -> Violation | None:
    """Return why no host among ``hosts`` could hold the job even idle, or None if one could.

    ``hosts`` are every host the job may run on (its pinned host, or the active hosts of its
    executor type), healthy or not: a host down now may come back. With no such host at all
    the job waits for one, as it always has. ``kind`` names the hosts in the message.
    """
    if not hosts:
        return None
    budgets = [(host, Budget.of(host, settings)) for host in hosts]
    if any(budget.holds(demand) for _, budget in budgets):
        return None
    unbounded = math.inf
    largest, budget = max(
        budgets,
        key=lambda hb: (
            unbounded if hb[1].memory_mb is None else hb[1].memory_mb,
            unbounded if hb[1].cpus is None else hb[1].cpus,
        ),
    )
    # Name the limit to lower when it alone is too big for every host.
    field = None
    if all(not _within(b.memory_mb, demand.memory_mb) for _, b in budgets):
        field = "memory_limit_mb"
    elif all(not _within(b.cpus, demand.cpus) for _, b in budgets):
        field = "cpu_limit"
    which = "its host" if len(hosts) == 1 else f"the largest {kind} host"
    return Violation(
        NO_HOST_FITS,
        f"No host can ever run this job: it asks for {demand.memory_mb:g} MB of memory and "
        f"{demand.cpus:g} CPUs, and {which}, {largest.name!r}, holds {budget.describe()} at most "
        f"(its capacity times MEMORY_OVERCOMMIT={settings.MEMORY_OVERCOMMIT:g} and "
        f"CPU_OVERCOMMIT={settings.CPU_OVERCOMMIT:g}), even with nothing else running.",
        field,
    )


def hosts_for(job: ContainerJob) -> list[ExecutorHost]:
    """Return every host ``job`` may run on: its pinned host, or the active hosts of its type."""
    from container_manager.models import ExecutorHost

    if job.docker_host is not None:
        return [job.docker_host]
    return list(ExecutorHost.objects.filter(is_active=True, executor_type=job.resolved_executor_type()))


def refusal(job: ContainerJob, settings: AppSettings) -> Violation | None:
    """The one rule ``create_job`` and the claim apply: a job no host could hold is refused."""
    return no_host_fits(Demand.of(job), hosts_for(job), settings, kind=job.resolved_executor_type())
