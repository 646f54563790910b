"""Run PostgreSQL's EXPLAIN ANALYZE on captured statements and name what does not scale in each plan."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from container_manager.models import ContainerJob

JOBS_TABLE = ContainerJob._meta.db_table


@dataclass(frozen=True)
class Explained:
    sql: str
    plan: dict[str, Any]
    execution_ms: float

    def nodes(self) -> Iterator[dict[str, Any]]:
        """Every node of the plan, subplans and init plans included."""
        stack = [self.plan]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.get("Plans", []))

    def rows_read_from_jobs(self) -> int:
        """Rows the plan's scans of the jobs table produced or filtered out, over all their loops."""
        return sum(
            (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * node.get("Actual Loops", 1)
            for node in self.nodes()
            if node.get("Relation Name") == JOBS_TABLE
        )

    def problems(self, *, max_rows: int) -> list[str]:
        """Say what in the plan grows with the table: a sequential scan of the jobs table, a sort
        spilling to disk, or more than ``max_rows`` rows of the jobs table read."""
        found = []
        for node in self.nodes():
            if node["Node Type"] == "Seq Scan" and node.get("Relation Name") == JOBS_TABLE:
                found.append(f"a sequential scan of {JOBS_TABLE}")
            if node.get("Sort Space Type") == "Disk":
                found.append(f"a sort spilling {node.get('Sort Space Used')} kB to disk")
        if (read := self.rows_read_from_jobs()) > max_rows:
            found.append(f"{read} rows of {JOBS_TABLE} read (at most {max_rows} expected)")
        return found

    def __str__(self) -> str:
        return f"{self.sql}\n{json.dumps(self.plan, indent=1)}"


def explain(sql: str) -> Explained:
    """EXPLAIN ANALYZE ``sql`` (as sent, values inlined) and return its plan: run it inside a
    transaction that is rolled back if it writes."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        (document,) = cursor.fetchone()
    data = json.loads(document) if isinstance(document, str) else document
    return Explained(sql, data[0]["Plan"], data[0]["Execution Time"])


def explain_statements(action: Callable[[], object], *, table: str = JOBS_TABLE) -> list[Explained]:
    """Run ``action``, then explain each statement it sent that reads or writes ``table``."""
    with CaptureQueriesContext(connection) as captured:
        action()
    statements = [
        query["sql"]
        for query in captured.captured_queries
        if f'"{table}"' in query["sql"]
        and query["sql"].lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE"))
    ]
    return [explain(sql) for sql in statements]
