"""The claim's three reads as plain SQL text, assembled from the models' metadata.

A worker claims once for every job, on its one database thread. Built with the ORM, these
reads were compiled again for each claim. That cost about 5 ms of CPU per job on the benchmark
machine, the largest single share of the worker's CPU (see bench/README.md). Joining the text
costs microseconds, and the database receives the same statements as before. Every value is
a query parameter, adapted by the connection's own field adapters.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from django.db import connection

from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import ACTIVE_STATUSES

BUSY_COLUMN = "cm_busy"


def _name(model: type[Any], field: str | None = None) -> str:
    """Return the quoted table name, or the quoted table.column of ``field``."""
    return _quoted(model, field, connection.vendor)


@functools.cache
def _quoted(model: type[Any], field: str | None, vendor: str) -> str:
    meta = model._meta
    table = connection.ops.quote_name(meta.db_table)
    if field is None:
        return table
    return f"{table}.{connection.ops.quote_name(meta.get_field(field).column)}"


def _select(what: str, model: type[Any], where: str, tail: str = "") -> str:
    # Identifiers come only from model metadata and every value is a parameter: no input can
    # reach the text, which is what S608 warns about.
    return f"SELECT {what} FROM {_name(model)} WHERE {where}{tail}"  # noqa: S608


def _columns(model: type[Any]) -> str:
    return _all_columns(model, connection.vendor)


@functools.cache
def _all_columns(model: type[Any], vendor: str) -> str:
    return ", ".join(_name(model, f.name) for f in model._meta.concrete_fields)


def _placeholders(values: Collection[Any]) -> str:
    return ", ".join(["%s"] * len(values))


def _when(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def _due_condition(claimable: Sequence[str], now: datetime) -> tuple[str, list[Any]]:
    """Claimable, not being cancelled, and neither scheduled nor backing off into the future."""
    job = ContainerJob
    sql = (
        f"{_name(job, 'status')} IN ({_placeholders(claimable)})"
        f" AND {_name(job, 'cancel_requested_at')} IS NULL"
        f" AND ({_name(job, 'scheduled_for')} IS NULL OR {_name(job, 'scheduled_for')} <= %s)"
        f" AND ({_name(job, 'next_attempt_at')} IS NULL OR {_name(job, 'next_attempt_at')} <= %s)"
    )
    return sql, [*claimable, _when(now), _when(now)]


def any_due(claimable: Sequence[str], now: datetime) -> bool:
    """Return whether any job may be claimed now (the idle path: one indexed query)."""
    where, params = _due_condition(claimable, now)
    with connection.cursor() as cursor:
        cursor.execute(_select("1", ContainerJob, where, " LIMIT 1"), params)
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
    active = sorted(ACTIVE_STATUSES)
    busy = _select(
        "COUNT(*)",
        job,
        f"{_name(job, 'docker_host')} = {_name(host, host._meta.pk.name)}"
        f" AND {_name(job, 'status')} IN ({_placeholders(active)})",
    )
    where = f"{_name(host, 'is_active')} = %s AND {_name(host, 'healthy')} = %s"
    params: list[Any] = [*active, True, True]
    if host_names:
        where += f" AND {_name(host, 'name')} IN ({_placeholders(host_names)})"
        params += list(host_names)
    sql = _select(
        f"{_columns(host)}, ({busy}) AS {BUSY_COLUMN}",
        host,
        where,
        f" ORDER BY {_name(host, host._meta.pk.name)}{_for_update(skip_locked=False, of=_name(host))}",
    )
    return {h: getattr(h, BUSY_COLUMN) for h in host.objects.raw(sql, params)}


def candidates(
    claimable: Sequence[str],
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
    due, params = _due_condition(claimable, now)
    placeable = f"{_name(job, 'docker_host')} IN ({_placeholders(host_pks)})"
    params += list(host_pks)
    if floating_types:
        placeable += (
            f" OR ({_name(job, 'docker_host')} IS NULL"
            f" AND {_name(job, 'executor_type')} IN ({_placeholders(floating_types)}))"
        )
        params += list(floating_types)
    sql = _select(
        _columns(job),
        job,
        f"{due} AND ({placeable})",
        f" ORDER BY {_name(job, 'priority')} DESC, {_name(job, 'created_at')} ASC LIMIT {int(limit)}"
        + _for_update(skip_locked=True, of=None),
    )
    return list(job.objects.raw(sql, params))
