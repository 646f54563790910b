"""The claim's reads as plain SQL text (see container_manager/sqltext.py for why).

Built with the ORM, the claim's reads and its UPDATE were compiled again for each claim: about
7 ms of CPU per job under the benchmark's load, the largest single share of the worker's CPU.
The database receives the same statements as before. The claim's UPDATE, the one status change
among them, is ``ContainerJob.mark_launching``'s, with the other transitions in models.py.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from django.db import connection

from container_manager import sqltext
from container_manager.due import claimable_sql
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.placement import Load
from container_manager.sqltext import name, placeholders
from container_manager.states import ACTIVE_STATUSES


def _claim_order() -> str:
    """The claim's order, which cm_job_claim_idx (over queued rows only) holds: a read in this order
    walks the index from its top and stops after its LIMIT, whatever the backlog's length."""
    job = ContainerJob
    return f" ORDER BY {name(job, 'priority')} DESC, {name(job, 'created_at')} ASC"


def any_due(now: datetime) -> bool:
    """Return whether any job may be claimed now (the idle path: one indexed query).

    Ordered as the claim is, so the planner walks cm_job_claim_idx and stops at the first due row,
    rather than scanning the table for one.
    """
    where, params = claimable_sql(ContainerJob, now)
    with connection.cursor() as cursor:
        cursor.execute(sqltext.select("1", ContainerJob, where, f"{_claim_order()} LIMIT 1"), params)
        return cursor.fetchone() is not None


def _for_update(*, skip_locked: bool, of: str | None) -> str:
    features = connection.features
    if not features.has_select_for_update:
        return ""  # SQLite: a write transaction is exclusive anyway; the guarded UPDATE decides.
    return " " + connection.ops.for_update_sql(
        skip_locked=skip_locked and features.has_select_for_update_skip_locked,
        of=(of,) if of and features.has_select_for_update_of else (),
    )


def lock_hosts(host_names: Collection[str]) -> list[ExecutorHost]:
    """Lock the served healthy hosts, in primary-key order (so two claims never deadlock).

    Every claim takes these locks before it reads what the hosts hold, so claims placing jobs on
    the same host run one after the other.
    """
    host = ExecutorHost
    host_pk = name(host, host._meta.pk.name)
    where = f"{name(host, 'is_active')} = %s AND {name(host, 'healthy')} = %s"
    params: list[Any] = [True, True]
    if host_names:
        where += f" AND {name(host, 'name')} IN ({placeholders(host_names)})"
        params += list(host_names)
    sql = sqltext.select(
        sqltext.all_columns(host),
        host,
        where,
        f" ORDER BY {host_pk}{_for_update(skip_locked=False, of=None)}",
    )
    return [loaded for loaded, _ in sqltext.load(host, sql, params)]


def host_loads(host_pks: Collection[int]) -> dict[int, Load]:
    """Return what each host's active jobs hold (across all workers): how many, their memory and CPUs.

    A statement of its own, sent once the hosts are locked: in READ COMMITTED each statement sees
    what had committed when it began, so counted in the locking statement itself, the jobs of a
    claim that held the lock while this one waited would be missed, and the host's last slot (or
    memory) handed out twice. It reads the active rows of these hosts on cm_job_host_status_idx:
    at most their ``max_concurrent_jobs``, whatever the size of the table.
    """
    if not host_pks:
        return {}
    job = ContainerJob
    active = sorted(ACTIVE_STATUSES)
    memory, cpus = name(job, "memory_limit"), name(job, "cpu_limit")
    host = name(job, "docker_host")
    sql = sqltext.select(
        f"{host}, COUNT(*), COALESCE(SUM({memory}), 0), COALESCE(SUM({cpus}), 0)",
        job,
        f"{host} IN ({placeholders(host_pks)}) AND {name(job, 'status')} IN ({placeholders(active)})",
        f" GROUP BY {host}",
    )
    loads = {pk: Load() for pk in host_pks}
    with connection.cursor() as cursor:
        cursor.execute(sql, [*host_pks, *active])
        for host_pk, jobs, memory_mb, cpu_total in cursor.fetchall():
            loads[host_pk] = Load(int(jobs), float(memory_mb), float(cpu_total))
    return loads


def candidates(
    now: datetime,
    *,
    host_pks: Collection[int],
    floating_types: Collection[str],
    limit: int,
) -> list[ContainerJob]:
    """Return up to ``limit`` due jobs, best first, pinned to one of ``host_pks`` or free to float.

    On PostgreSQL the rows are locked, and rows another claimer holds are skipped, not waited for.
    """
    job = ContainerJob
    due, params = claimable_sql(job, now)
    placeable = f"{name(job, 'docker_host')} IN ({placeholders(host_pks)})"
    params += list(host_pks)
    if floating_types:
        placeable += (
            f" OR ({name(job, 'docker_host')} IS NULL"
            f" AND {name(job, 'executor_type')} IN ({placeholders(floating_types)}))"
        )
        params += list(floating_types)
    sql = sqltext.select(
        sqltext.all_columns(job),
        job,
        f"{due} AND ({placeable})",
        f"{_claim_order()} LIMIT {int(limit)}" + _for_update(skip_locked=True, of=None),
    )
    return [loaded for loaded, _ in sqltext.load(job, sql, params)]
