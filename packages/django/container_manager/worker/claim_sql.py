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


def lock_hosts(host_names: Collection[str]) -> dict[ExecutorHost, int]:
    """Lock the served healthy hosts and count each one's active jobs (across all workers) in one query."""
    job, host = ContainerJob, ExecutorHost
    host_pk = name(host, host._meta.pk.name)
    active = sorted(ACTIVE_STATUSES)
    busy = sqltext.select(
        "COUNT(*)",
        job,
        f"{name(job, 'docker_host')} = {host_pk} AND {name(job, 'status')} IN ({placeholders(active)})",
    )
    where = f"{name(host, 'is_active')} = %s AND {name(host, 'healthy')} = %s"
    params: list[Any] = [*active, True, True]
    if host_names:
        where += f" AND {name(host, 'name')} IN ({placeholders(host_names)})"
        params += list(host_names)
    sql = sqltext.select(
        f"{sqltext.all_columns(host)}, ({busy})",
        host,
        where,
        f" ORDER BY {host_pk}{_for_update(skip_locked=False, of=name(host))}",
    )
    return {loaded: busy for loaded, (busy,) in sqltext.load(host, sql, params)}


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
