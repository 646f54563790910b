"""The claim's statements as plain SQL text, assembled from the models' metadata.

A worker claims once for every job, on its one database thread. Built with the ORM, these
statements were compiled again for each claim: about 7 ms of CPU per job under the benchmark's
load, the largest single share of the worker's CPU (see bench/README.md). Joining the text
costs microseconds, and the database receives the same statements as before. Every value is a
query parameter, adapted by the connection's own field adapters, and rows come back through
the fields' own converters.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import connection, models

from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import ACTIVE_STATUSES, JobStatus

BUSY_COLUMN = "cm_busy"


def _name(model: type[models.Model], field: str | None = None) -> str:
    """Return the quoted table name, or the quoted table.column of ``field``."""
    return _quoted(model, field, connection.vendor)


@functools.cache
def _quoted(model: type[models.Model], field: str | None, vendor: str) -> str:
    meta = model._meta
    table = connection.ops.quote_name(meta.db_table)
    if field is None:
        return table
    return f"{table}.{_column(model, field)}"


def _select(what: str, model: type[models.Model], where: str, tail: str = "") -> str:
    # Identifiers come only from model metadata and every value is a parameter: no input can
    # reach the text, which is what S608 warns about.
    return f"SELECT {what} FROM {_name(model)} WHERE {where}{tail}"  # noqa: S608


def _update(model: type[models.Model], assignments: str, where: str) -> str:
    return f"UPDATE {_name(model)} SET {assignments} WHERE {where}"  # noqa: S608 - as in _select


def _column(model: type[models.Model], field: str) -> str:
    """Return the bare quoted column (SET clauses take no table prefix on every backend)."""
    column = _fields(model)[field].column
    if column is None:  # Only fields without a column of their own; all concrete fields have one.
        raise ValueError(f"{model.__name__}.{field} has no database column.")
    return connection.ops.quote_name(column)


def _columns(model: type[models.Model]) -> str:
    return _all_columns(model, connection.vendor)


@functools.cache
def _all_columns(model: type[models.Model], vendor: str) -> str:
    return ", ".join(_name(model, f.name) for f in model._meta.concrete_fields)


@functools.cache
def _converters(model: type[models.Model], vendor: str) -> list[tuple[int, list[Any], Any]]:
    """Return, per concrete column that has any, the converters the ORM applies when reading it.

    They depend on the backend only, so they are found once per vendor, as the ORM's compiler
    finds them: the backend's own converters first, then the field's.
    """
    table = model._meta.db_table
    found = []
    for index, field in enumerate(model._meta.concrete_fields):
        column = field.get_col(table)
        functions = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        if functions:
            found.append((index, functions, column))
    return found


def _load[M: models.Model](model: type[M], sql: str, params: Sequence[Any]) -> list[tuple[M, list[Any]]]:
    """Run a SELECT of all of ``model``'s columns (then any extras); return each instance and its extras."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    width = len(model._meta.concrete_fields)
    converters = _converters(model, connection.vendor)
    loaded = []
    for row in rows:
        values = list(row)
        for index, functions, column in converters:
            for convert in functions:
                values[index] = convert(values[index], column, connection)
        loaded.append((model.from_db(connection.alias, _attnames(model), values[:width]), values[width:]))
    return loaded


@functools.cache
def _attnames(model: type[models.Model]) -> tuple[str, ...]:
    return tuple(field.attname for field in model._meta.concrete_fields)


@functools.cache
def _fields(model: type[models.Model]) -> dict[str, models.Field[Any, Any]]:
    return {field.name: field for field in model._meta.concrete_fields}


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
    return {loaded: busy for loaded, (busy,) in _load(host, sql, params)}


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
    return [loaded for loaded, _ in _load(job, sql, params)]


def claim_rows(
    pks: Collection[Any], claimable: Sequence[str], *, changes: Mapping[str, Any], host_pk: int
) -> int:
    """Move the listed jobs that are still claimable to LAUNCHING on ``host_pk``; return how many moved.

    ``changes`` holds the claim's other fields (worker, lease, timestamps) by field name. The status
    condition is the guard: a job cancelled since it was read stays where it is.
    """
    job = ContainerJob
    meta = job._meta
    assignments = [f"{_column(job, 'status')} = %s", f"{_column(job, 'docker_host')} = %s"]
    params: list[Any] = [JobStatus.LAUNCHING.value, host_pk]
    for name, value in changes.items():
        assignments.append(f"{_column(job, name)} = %s")
        params.append(_fields(job)[name].get_db_prep_save(value, connection))
    attempt = _column(job, "attempt")
    assignments.append(f"{attempt} = {attempt} + 1")
    where = (
        f"{_name(job, meta.pk.name)} IN ({_placeholders(pks)})"
        f" AND {_name(job, 'status')} IN ({_placeholders(claimable)})"
    )
    params += [meta.pk.get_db_prep_value(pk, connection) for pk in pks]
    params += claimable
    with connection.cursor() as cursor:
        cursor.execute(_update(job, ", ".join(assignments), where), params)
        return int(cursor.rowcount)
