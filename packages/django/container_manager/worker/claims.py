"""Claim jobs: lock the hosts, read the due jobs, place each on a host with room, and claim them.

The claim itself (queued -> LAUNCHING) is ``ContainerJob.mark_launching``; leases and takeovers
are ``ContainerJob.renew_leases`` and ``ContainerJob.take_over``.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import prefetch_related_objects
from django.utils import timezone

from container_manager import placement
from container_manager.conf import AppSettings, app_settings
from container_manager.health import refuse_if_unusable
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.worker import claim_sql
from container_manager.worker.placing import Placer, Verdict
from container_manager_core.types import Violation


@dataclass(frozen=True)
class Claim:
    """A job this worker now owns: the row as claimed, whether the user pinned its host, and, for a
    job no host could ever hold, why it is refused (the worker fails it before any launch)."""

    job: ContainerJob
    pinned: bool
    refusal: Violation | None = None


@dataclass(frozen=True)
class ClaimRound:
    """What one claim won, whether it saw due jobs it left behind (beyond its limit or its room),
    and whether one of them waits for room on this worker's hosts (it will fit once jobs end)."""

    won: list[Claim]
    more_due: bool
    waiting: bool = False


def claim_jobs(
    *,
    worker_id: str,
    limit: int,
    host_names: Collection[str],
    default_executor_type: str,
    lease_seconds: float,
    rng: random.Random,
    announced: bool = False,
) -> ClaimRound:
    """Claim up to ``limit`` due jobs for ``worker_id``, each placed on a host with room for it.

    Room is a free job slot and the memory and CPU the job asks for (``container_manager.placement``);
    a job that must wait holds a host against the jobs behind it (``worker/placing.py``). Host rows
    are locked for the claim, and what they hold is read only once the locks are held, so two
    workers can never both fill a host's last slot or last megabytes; each job moves with an
    UPDATE guarded by its status, so a job is claimed by one worker only.
    ``announced``: the database just said a job was queued, so the idle pre-check is skipped.
    """
    if limit <= 0:
        return ClaimRound([], more_due=False)
    if not announced and not claim_sql.any_due(timezone.now()):
        return ClaimRound([], more_due=False)  # The idle path costs one indexed query.
    settings = app_settings()
    won: list[Claim] = []
    with transaction.atomic():
        # A host that cannot be used as configured is marked unhealthy and left out; its jobs wait.
        hosts = [h for h in claim_sql.lock_hosts(host_names) if not refuse_if_unusable(h)]
        loads = claim_sql.host_loads([h.pk for h in hosts])
        # After the locks: a job ending before this claim could see its room ended before launched_at.
        now = timezone.now()
        open_hosts = [h for h in hosts if loads[h.pk].jobs < h.max_concurrent_jobs]
        if not open_hosts:
            # Every host is full: a slot freeing elsewhere is not announced, so the poll finds it.
            return ClaimRound([], more_due=False)
        placer = Placer(hosts, loads, settings=settings, default_executor_type=default_executor_type, rng=rng)
        types = {h.executor_type for h in open_hosts}
        floating_types = types | ({""} if default_executor_type in types else set())
        # Read a few extra rows: some may wait for a host that fills up during this claim, and each
        # job that must wait holds one host, so at most one row per host is read for those.
        candidates = claim_sql.candidates(
            now,
            host_pks=[h.pk for h in open_hosts],
            floating_types=sorted(floating_types),
            limit=limit * 2 + len(hosts),
        )
        if any(job.environment_template_id is not None for job in candidates):
            prefetch_related_objects(candidates, "environment_template")  # to_spec reads it
        placed: dict[int, list[ContainerJob]] = {}
        refused: dict[Any, Violation] = {}
        waiting = False
        pinned = {job.pk for job in candidates if job.docker_host_id is not None}
        for job in candidates:
            if sum(map(len, placed.values())) >= limit or placer.all_reserved():
                break
            decision = placer.place(job)
            target = decision.host
            waiting = waiting or decision.verdict is Verdict.WAITS
            if decision.verdict is Verdict.TOO_BIG_HERE:
                target = _refused_on(job, placer, settings, refused)
            if target is not None:
                placed.setdefault(target.pk, []).append(job)
        by_pk = {h.pk: h for h in hosts}
        lease = now + timedelta(seconds=lease_seconds)
        for host_pk, jobs in placed.items():
            claimed = ContainerJob.mark_launching(
                jobs, host=by_pk[host_pk], worker_id=worker_id, lease_expires_at=lease, now=now
            )
            won.extend(Claim(job, pinned=job.pk in pinned, refusal=refused.get(job.pk)) for job in claimed)
    # The candidates query reads more than the limit, so rows beyond those placed are due jobs left.
    return ClaimRound(won, more_due=len(candidates) > sum(map(len, placed.values())), waiting=waiting)


def _refused_on(
    job: ContainerJob, placer: Placer, settings: AppSettings, refused: dict[Any, Violation]
) -> ExecutorHost | None:
    """Return the host to record a job no host could ever hold on, or None if some host could.

    None of this worker's hosts could hold it even idle; the rule ``create_job`` applies is asked
    about all of its hosts (another worker's may be bigger). A refused job is claimed on one of
    this worker's hosts with a free slot, taking the slot but none of its memory or CPU, and the
    worker fails it before anything is sent to the engine.
    """
    violation = placement.refusal(job, settings)
    if violation is None:
        return None  # It fits a host this worker does not serve (or not now): it waits for it.
    seat = placer.refuse_on(job)
    if seat is not None:
        refused[job.pk] = violation
    return seat
