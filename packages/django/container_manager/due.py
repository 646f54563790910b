"""What a worker may claim now: the one definition, read by ``claimable()`` and by the claim's SQL.

The claim's reads are plain SQL text for speed (see ``worker/claim_sql.py``), so the rule is kept
here as data and each side renders it: ``claimable_q`` for the ORM, ``claimable_sql`` for the claim.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from django.db import connection
from django.db.models import Q

from container_manager.sqltext import name, placeholders
from container_manager.states import CLAIMABLE_STATUSES, JobStatus, sources_of

# A due job: in a claimable status, nobody asked to cancel it, and neither scheduled nor backing
# off into the future.
# The statuses are read from the transition table, so the claim can always make the move it selects for.
STATUSES: Final = tuple(sorted(sources_of(JobStatus.LAUNCHING) & CLAIMABLE_STATUSES))
UNSET: Final = ("cancel_requested_at",)
NOT_BEFORE_NOW: Final = ("scheduled_for", "next_attempt_at")


def claimable_q(now: datetime) -> Q:
    """Return the rule as an ORM filter."""
    condition = Q(status__in=STATUSES)
    for field in UNSET:
        condition &= Q(**{f"{field}__isnull": True})
    for field in NOT_BEFORE_NOW:
        condition &= Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__lte": now})
    return condition


def claimable_sql(model: Any, now: datetime) -> tuple[str, list[Any]]:
    """Return the rule as a SQL condition on ``model``'s table and its parameters."""
    when = connection.ops.adapt_datetimefield_value(now)
    parts = [f"{name(model, 'status')} IN ({placeholders(STATUSES)})"]
    params: list[Any] = list(STATUSES)
    parts += [f"{name(model, field)} IS NULL" for field in UNSET]
    for field in NOT_BEFORE_NOW:
        parts.append(f"({name(model, field)} IS NULL OR {name(model, field)} <= %s)")
        params.append(when)
    return " AND ".join(parts), params
