"""Place one claim's candidates on the locked hosts, best first, and keep big jobs from starving.

Placing each job on any host where it fits would starve big jobs: while small jobs keep coming, a
host's running jobs end one by one and each freed slot goes at once to the next small job, so the
host never has room for the big job at the head of the queue, however long it waits. So:

**A job that must wait holds a host.** Candidates are taken in claim order (priority, then age).
When a job fits on none of its hosts now, but one of them could hold it idle, it reserves one
such host: the first by primary key not already reserved in this claim, so every claim (and every
worker serving that host) reserves the same host for the same job while it waits. A reserved host
takes no job behind the waiting one in this claim: it only loses jobs as they end, until the
waiting job fits there and is placed. The other hosts keep taking the jobs behind it. A job whose
hosts are all reserved by jobs ahead of it waits behind them without reserving another.

So a job waits only for jobs ahead of it in claim order (higher priority, or older at the same
priority) and for the active jobs of the host it holds, never for the stream of jobs behind it.
Each waiting job reserves at most one host, so a claim reads at most its limit (twice, for jobs
another claim takes meanwhile) plus one row per host.

The cost: a reserved host may sit partly idle while it drains, and a small job behind the big one
is not slipped into that idle room even when it would end in time (backfilling would need every
job's run time, which is not known).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass

from container_manager.conf import AppSettings
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.placement import Budget, Demand, Load


def pick_host(hosts: Sequence[ExecutorHost], rng: random.Random) -> ExecutorHost | None:
    """Choose one host at random in proportion to its weight; weight 0 drains a host."""
    weighted = [h for h in hosts if h.weight > 0]
    if not weighted:
        return None
    return rng.choices(weighted, weights=[h.weight for h in weighted])[0]


@dataclass
class Seat:
    """A locked host in one claim: its budget, what it holds, and whether a waiting job reserved it."""

    host: ExecutorHost
    budget: Budget
    load: Load
    reserved: bool = False

    def admits(self, demand: Demand) -> bool:
        return not self.reserved and self.budget.admits(self.load, demand)


class Verdict(enum.Enum):
    PLACED = "placed"  # On the host returned with it; its demand now counts there.
    WAITS = "waits"  # One of this claim's hosts will have room for it later (it may hold one).
    NOT_HERE = "not_here"  # None of this claim's hosts may take it (its pinned host is not here).
    TOO_BIG_HERE = "too_big_here"  # None of this claim's hosts could hold it even idle.


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    host: ExecutorHost | None = None


class Placer:
    """Decide, job by job in claim order, where each candidate goes (see the module's rule)."""

    def __init__(
        self,
        hosts: Sequence[ExecutorHost],
        loads: dict[int, Load],
        *,
        settings: AppSettings,
        default_executor_type: str,
        rng: random.Random,
    ) -> None:
        self.seats = [
            Seat(host, Budget.of(host, settings), loads.get(host.pk, Load()))
            for host in sorted(hosts, key=lambda h: h.pk)
        ]
        self._by_pk = {seat.host.pk: seat for seat in self.seats}
        self._default_type = default_executor_type
        self._rng = rng

    def eligible(self, job: ContainerJob) -> list[Seat]:
        """Return the seats ``job`` may go to: its pinned host, or the weighted hosts of its type."""
        if job.docker_host_id is not None:
            seat = self._by_pk.get(job.docker_host_id)
            return [] if seat is None else [seat]
        wanted = job.executor_type or self._default_type
        return [s for s in self.seats if s.host.executor_type == wanted and s.host.weight > 0]

    def place(self, job: ContainerJob) -> Decision:
        """Place ``job`` where it fits now, or reserve a host for it, or say no host here can hold it."""
        demand = Demand.of(job)
        seats = self.eligible(job)
        fitting = [s for s in seats if s.admits(demand)]
        if fitting:
            if job.docker_host_id is not None:
                seat = fitting[0]
            else:
                host = pick_host([s.host for s in fitting], self._rng)
                seat = self._by_pk[host.pk] if host is not None else fitting[0]
            seat.load.add(demand)
            return Decision(Verdict.PLACED, seat.host)
        if not seats:
            return Decision(Verdict.NOT_HERE)
        holders = [s for s in seats if s.budget.holds(demand)]
        if not holders:
            return Decision(Verdict.TOO_BIG_HERE)
        for seat in holders:
            if not seat.reserved:
                seat.reserved = True
                break
        return Decision(Verdict.WAITS)

    def refuse_on(self, job: ContainerJob) -> ExecutorHost | None:
        """Return an eligible host with a free slot to record a refused job on, taking only the slot.

        The job never runs (the worker fails it before launch), so it holds no memory or CPU; the
        slot keeps the host's job count within ``max_concurrent_jobs`` while the row is active.
        """
        free = [s for s in self.eligible(job) if s.load.jobs < s.budget.slots]
        if not free:
            return None
        free[0].load.jobs += 1
        return free[0].host

    def all_reserved(self) -> bool:
        return all(seat.reserved for seat in self.seats)
