"""Fill the jobs table with many rows in one INSERT ... SELECT generate_series (PostgreSQL only).

The plans test and ``bench.scale`` need tables of 100k-1M jobs; made one by one through
``create_job`` that would take minutes. The rows are what the worker and the admin find in a busy
deployment: queued backlogs, finished history, active jobs. Every column not named here gets its
field's default, so a field added to the model later needs no change here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from container_manager import sqltext
from container_manager.conf import app_settings
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.states import ACTIVE_STATUSES, FINISHED_STATUSES, JobStatus


def seed_jobs(
    count: int,
    *,
    status: JobStatus = JobStatus.PENDING,
    priority: int = 0,
    host: ExecutorHost | None = None,
    executor_type: str = "mock",
    oldest: datetime | None = None,
    name: str = "seeded",
    worker_id: str = "",
    environment: dict[str, str] | None = None,
) -> int:
    """Insert ``count`` jobs in ``status``, created a millisecond apart from ``oldest`` on; return ``count``.

    Finished jobs get ``completed_at`` one second after their creation; active ones a lease an hour long.
    ``environment``: every job's variables (``MOCK_DURATION`` and the others tell the mock what to play).
    """
    if connection.vendor != "postgresql":
        raise RuntimeError("seed_jobs uses generate_series: it needs PostgreSQL.")
    if count <= 0:
        return 0
    start = oldest or timezone.now() - timedelta(milliseconds=count)
    step = "make_interval(secs => g / 1000.0)"
    # Per-row values as SQL expressions over g, the series; the rest are per-statement parameters.
    expressions: dict[str, tuple[str, list[Any]]] = {
        "id": ("gen_random_uuid()", []),
        "name": ("%s || g", [f"{name}-"]),
        "created_at": (f"%s::timestamptz + {step}", [start]),
    }
    defaults = app_settings()
    values: dict[str, Any] = {
        # What create_job fills in, so the worker's policy check before launch passes.
        "memory_limit": defaults.DEFAULT_MEMORY_LIMIT_MB,
        "cpu_limit": defaults.DEFAULT_CPU_LIMIT,
        "timeout_seconds": defaults.DEFAULT_TIMEOUT_SECONDS,
        "pids_limit": defaults.DEFAULT_PIDS_LIMIT,
        "user": defaults.DEFAULT_USER,
        "status": status.value,
        "priority": priority,
        "docker_host": None if host is None else host.pk,
        "executor_type": executor_type,
        "docker_image": "busybox:latest",
        "command": "true",
        "worker_id": worker_id,
        "environment_overrides": environment or {},
    }
    if status in FINISHED_STATUSES:
        expressions["completed_at"] = (f"%s::timestamptz + {step} + interval '1 second'", [start])
        values["termination_reason"] = "completed" if status == JobStatus.COMPLETED else status.value
    if status in ACTIVE_STATUSES:
        values["lease_expires_at"] = timezone.now() + timedelta(hours=1)
        values["attempt"] = 1
    columns, selects, params = [], [], []
    for field in ContainerJob._meta.concrete_fields:
        columns.append(sqltext.column(ContainerJob, field.name))
        if field.name in expressions:
            sql, extra = expressions[field.name]
            selects.append(sql)
            params += extra
            continue
        value = values[field.name] if field.name in values else field.get_default()
        selects.append("%s")
        params.append(field.get_db_prep_save(value, connection))
    table = sqltext.name(ContainerJob)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 - names from model metadata only
            f"SELECT {', '.join(selects)} FROM generate_series(1, %s) AS g",
            [*params, count],
        )
    return count


def analyze() -> None:
    """Refresh the planner's statistics of the jobs table, as autovacuum would after a bulk load."""
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {sqltext.name(ContainerJob)}")
