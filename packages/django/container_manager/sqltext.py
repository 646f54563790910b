"""Plain SQL text for the statements a worker runs for every job, built from model metadata.

The ORM compiles a statement again each time it runs: about 1 ms of CPU for a simple guarded
UPDATE, and several for the claim's reads (bench/README.md has the profile). The worker runs
them for every job on its one database thread, so this module assembles the same statements
as text. Names are quoted once per backend, every value is a query parameter prepared by its
field (as ``QuerySet.update`` prepares it), and rows read back go through the fields' own
converters into ``Model.from_db``.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from django.db import connection, models


def name(model: type[models.Model], field: str | None = None) -> str:
    """Return the quoted table name, or the quoted table.column of ``field``."""
    return _qualified(model, field, connection.vendor)


@functools.cache
def _qualified(model: type[models.Model], field: str | None, vendor: str) -> str:
    table = connection.ops.quote_name(model._meta.db_table)
    return table if field is None else f"{table}.{column(model, field)}"


def column(model: type[models.Model], field: str) -> str:
    """Return the bare quoted column (SET clauses take no table prefix on every backend)."""
    found = fields(model)[field].column
    if found is None:  # Only fields without a column of their own; every concrete field has one.
        raise ValueError(f"{model.__name__}.{field} has no database column.")
    return connection.ops.quote_name(found)


@functools.cache
def fields(model: type[models.Model]) -> dict[str, models.Field[Any, Any]]:
    """Return the model's concrete fields by name and by attribute name (``docker_host_id``)."""
    concrete = model._meta.concrete_fields
    return {f.name: f for f in concrete} | {f.attname: f for f in concrete}


def placeholders(values: Collection[Any]) -> str:
    return ", ".join(["%s"] * len(values))


def select(what: str, model: type[models.Model], where: str, tail: str = "") -> str:
    # Identifiers come only from model metadata and every value is a parameter: no input can
    # reach the text, which is what S608 warns about.
    return f"SELECT {what} FROM {name(model)} WHERE {where}{tail}"  # noqa: S608


def all_columns(model: type[models.Model]) -> str:
    return _all_columns(model, connection.vendor)


@functools.cache
def _all_columns(model: type[models.Model], vendor: str) -> str:
    return ", ".join(name(model, f.name) for f in model._meta.concrete_fields)


@functools.cache
def _attnames(model: type[models.Model]) -> tuple[str, ...]:
    return tuple(field.attname for field in model._meta.concrete_fields)


@functools.cache
def _converters(model: type[models.Model], vendor: str) -> list[tuple[int, list[Any], Any]]:
    """Return, per concrete column that has any, the converters the ORM applies when reading it.

    They depend on the backend only, so they are found once per vendor, as the ORM's compiler
    finds them: the backend's own converters first, then the field's.
    """
    table = model._meta.db_table
    found = []
    for index, field in enumerate(model._meta.concrete_fields):
        col = field.get_col(table)
        functions = connection.ops.get_db_converters(col) + field.get_db_converters(connection)
        if functions:
            found.append((index, functions, col))
    return found


def load[M: models.Model](model: type[M], sql: str, params: Sequence[Any]) -> list[tuple[M, list[Any]]]:
    """Run a SELECT of all of ``model``'s columns (then any extras); return each instance and its extras."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    width = len(model._meta.concrete_fields)
    converters = _converters(model, connection.vendor)
    loaded = []
    for row in rows:
        values = list(row)
        for index, functions, col in converters:
            for convert in functions:
                values[index] = convert(values[index], col, connection)
        loaded.append((model.from_db(connection.alias, _attnames(model), values[:width]), values[width:]))
    return loaded


def prepared(model: type[models.Model], field: str, value: Any) -> Any:
    """Return ``value`` as ``QuerySet.update`` would send it for ``field``."""
    target = fields(model)[field]
    if target.remote_field is not None and hasattr(value, "prepare_database_save"):
        value = value.prepare_database_save(target)  # A model instance for a foreign key.
    return target.get_db_prep_save(value, connection)


def update(
    model: type[models.Model],
    changes: Mapping[str, Any],
    where: str,
    where_params: Sequence[Any],
    *,
    raw_assignments: Sequence[str] = (),
) -> int:
    """Run ``UPDATE model SET <changes> WHERE <where>``; return the number of rows changed.

    ``changes`` are plain values by field name; ``raw_assignments`` are extra ``col = expr`` texts.
    """
    assignments = [f"{column(model, field)} = %s" for field in changes]
    params = [prepared(model, field, value) for field, value in changes.items()]
    text = f"UPDATE {name(model)} SET {', '.join([*assignments, *raw_assignments])} WHERE {where}"  # noqa: S608 - as in select
    with connection.cursor() as cursor:
        cursor.execute(text, [*params, *where_params])
        return int(cursor.rowcount)


def is_plain(field: models.Field[Any, Any], value: Any) -> bool:
    """Return whether ``value`` can be sent as a parameter (not an expression, not a custom placeholder)."""
    return not hasattr(value, "resolve_expression") and not hasattr(field, "get_placeholder")
