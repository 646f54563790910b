"""Row counts that stay cheap on big tables: the planner's estimate when it is large, else the exact count.

A ``COUNT(*)`` reads every row it counts: on a table of a million jobs the admin's list and queue
summary would read the table on every page load. On PostgreSQL the planner already knows roughly
how many rows a query returns (from the statistics autovacuum keeps), at the cost of planning it.
Counts it puts at ``ESTIMATE_FROM`` rows or more are shown as estimates ("~1,000,000"); smaller
ones, cheap to count, are counted exactly. Other databases always count exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

# Below this many rows (as planned) a count is exact: cheap enough, and small counts are read closely.
ESTIMATE_FROM = 10_000


@dataclass(frozen=True)
class RowCount:
    """A number of rows, and whether it is the planner's estimate rather than a count."""

    value: int
    estimated: bool

    def __str__(self) -> str:
        return f"~{self.value:,}" if self.estimated else str(self.value)


def planned_rows(queryset: QuerySet[Any]) -> int | None:
    """Return the planner's estimate of the rows ``queryset`` returns, or None off PostgreSQL."""
    if connections[queryset.db].vendor != "postgresql":
        return None
    plan = json.loads(queryset.order_by().explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


def row_count(queryset: QuerySet[Any]) -> RowCount:
    """Count ``queryset``'s rows exactly if the planner puts them under ESTIMATE_FROM, else estimate."""
    planned = planned_rows(queryset)
    if planned is not None and planned >= ESTIMATE_FROM:
        return RowCount(planned, estimated=True)
    return RowCount(queryset.count(), estimated=False)


if TYPE_CHECKING:
    _PaginatorBase = Paginator[Any]
else:  # Paginator is generic only in the type stubs.
    _PaginatorBase = Paginator


class EstimatingPaginator(_PaginatorBase):
    """A paginator whose count is ``row_count``'s: estimated for big result sets on PostgreSQL."""

    @cached_property
    def count(self) -> int:
        if not isinstance(self.object_list, QuerySet):
            return len(self.object_list)
        return row_count(self.object_list).value
