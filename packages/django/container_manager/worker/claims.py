"""Claim jobs: lock the hosts, read the due jobs, place each on a host with room, and claim them.

The claim itself (queued -> LAUNCHING) is ``ContainerJob.mark_launching``; leases and takeovers
are ``ContainerJob.renew_leases`` and ``ContainerJob.take_over``.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import prefetch_related_objects
from django.utils import timezone

from container_manager.health import refuse_if_unusable
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.worker import claim_sql


@dataclass(frozen=True)
class Claim:
    """A job this worker now owns: the row as claimed, and whether the user pinned its host."""

    job: ContainerJob
    pinned: bool


@dataclass(frozen=True)
class ClaimRound:
    """What one claim won, and whether it saw due jobs it left behind (beyond its limit or its room)."""

    won: list[Claim]
    more_due: bool


def pick_host(hosts: Sequence[ExecutorHost], rng: random.Random) -> ExecutorHost | None:
    """Choose one host at random in proportion to its weight; weight 0 drains a host."""
    weighted = [h for h in hosts if h.weight > 0]
    if not weighted:
        return None
    return rng.choices(weighted, weights=[h.weight for h in weighted])[0]


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

    Host rows are locked for the claim so two workers cannot both fill a host's last slot; each
    job moves with an UPDATE guarded by its status, so a job is claimed by one worker only.
    ``announced``: the database just said a job was queued, so the idle pre-check is skipped.
    """
    now = timezone.now()
    if limit <= 0:
        return ClaimRound([], more_due=False)
    if not announced and not claim_sql.any_due(now):
        return ClaimRound([], more_due=False)  # The idle path costs one indexed query.
    won: list[Claim] = []
    with transaction.atomic():
        # A host that cannot be used as configured is marked unhealthy and left out; its jobs wait.
        hosts = {h: busy for h, busy in claim_sql.lock_hosts(host_names).items() if not refuse_if_unusable(h)}
        room = {h.pk: h.max_concurrent_jobs - busy for h, busy in hosts.items()}
        open_hosts = [h for h in hosts if room[h.pk] > 0]
        if not open_hosts:
            # Every host is full: a slot freeing elsewhere is not announced, so the poll finds it.
            return ClaimRound([], more_due=False)
        by_pk = {h.pk: h for h in open_hosts}
        types = {h.executor_type for h in open_hosts}
        floating_types = types | ({""} if default_executor_type in types else set())
        # Read a few extra rows: some may wait for a host that fills up during this claim.
        candidates = claim_sql.candidates(
            now, host_pks=list(by_pk), floating_types=sorted(floating_types), limit=limit * 2
        )
        if any(job.environment_template_id is not None for job in candidates):
            prefetch_related_objects(candidates, "environment_template")  # to_spec reads it
        placed: dict[int, list[ContainerJob]] = {}
        pinned = {job.pk for job in candidates if job.docker_host_id is not None}
        for job in candidates:
            if sum(map(len, placed.values())) >= limit:
                break
            if job.docker_host_id is not None:
                target = job.docker_host_id if room.get(job.docker_host_id, 0) > 0 else None
            else:
                wanted = job.executor_type or default_executor_type
                host = pick_host([h for h in open_hosts if h.executor_type == wanted and room[h.pk] > 0], rng)
                target = None if host is None else host.pk
            if target is not None:
                room[target] -= 1
                placed.setdefault(target, []).append(job)
        lease = now + timedelta(seconds=lease_seconds)
        for host_pk, jobs in placed.items():
            claimed = ContainerJob.mark_launching(
                jobs, host=by_pk[host_pk], worker_id=worker_id, lease_expires_at=lease, now=now
            )
            won.extend(Claim(job, pinned=job.pk in pinned) for job in claimed)
    # The candidates query reads up to twice the limit, so rows beyond those placed are due jobs left.
    return ClaimRound(won, more_due=len(candidates) > sum(map(len, placed.values())))
