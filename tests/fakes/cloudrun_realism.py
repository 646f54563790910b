"""How the fake departs from an instant, lenient service, as the real one does; tests tune each knob.

Every delay is drawn from one seeded generator per entry or resource, so a test sees the same lags
on every run, and the defaults are small enough that tests stay well under a second each.
"""

from __future__ import annotations

import collections
import hashlib
import random
import threading
import time

import attrs

# Cloud Run quotas (cloud.google.com/run/quotas, "Resource limits"): at most 1000 jobs per project
# and region.
MAX_JOBS_PER_REGION = 1000


@attrs.define
class Realism:
    """The fake's timing and limits."""

    seed: int = 0
    # Seconds between a line being printed and its entry being readable through entries.list:
    # LogEntry.receive_timestamp (google/logging/v2/log_entry.proto) is later than the timestamp, and
    # TailLogEntriesRequest.buffer_window (google/logging/v2/logging.proto) exists "to prevent out
    # of order results due to late arriving log entries". Real lags reach about a minute.
    log_lag: tuple[float, float] = (0.0, 0.05)
    # Seconds after an execution's completion before its task's last_attempt_result is filled in:
    # the execution and its tasks are reconciled separately (Execution.reconciling, Task.reconciling).
    result_lag: float = 0.0
    # Seconds a created or updated job spends reconciling before its Ready condition (terminal_condition)
    # resolves; a missing image or an unreadable secret fails it then, not at CreateJob.
    readiness_delay: float = 0.0
    max_jobs: int = MAX_JOBS_PER_REGION
    # Empty ListLogEntries pages (with a next_page_token) served before the first entries of a search:
    # ListLogEntriesResponse says an empty page with a token means the search "did not have time to
    # search all the possible log entries".
    empty_log_pages: int = 0
    # Whether a cancelled execution's Completed condition reads SUCCEEDED (with reason CANCELLED and
    # cancelled_count set) rather than FAILED: not documented either way, so both are exercised.
    cancel_reads_succeeded: bool = False

    def lag(self, key: str) -> float:
        """Return the visibility lag of the log entry ``key``: the same for the same seed and key."""
        low, high = self.log_lag
        digest = hashlib.sha256(f"{self.seed}:{key}".encode()).digest()
        return random.Random(digest).uniform(low, high)  # noqa: S311 (a test lag, not a secret)


def project_number(project_id: str) -> str:
    """Return the fake's project number for ``project_id``: 12 digits, stable for the id."""
    digest = int(hashlib.sha256(project_id.encode()).hexdigest(), 16)
    return str(100_000_000_000 + digest % 900_000_000_000)


class RateLimiter:
    """Refuse calls beyond N a minute per method, as Google APIs do with RESOURCE_EXHAUSTED (HTTP 429)."""

    WINDOW = 60.0

    def __init__(self) -> None:
        self._limits: dict[str, int] = {}
        self._calls: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._lock = threading.Lock()

    def limit(self, method: str, per_minute: int | None) -> None:
        with self._lock:
            if per_minute is None:
                self._limits.pop(method, None)
            else:
                self._limits[method] = per_minute
            self._calls[method].clear()

    def allow(self, method: str) -> bool:
        """Count a call of ``method``; say whether it is within its limit."""
        with self._lock:
            limit = self._limits.get(method)
            if limit is None:
                return True
            now = time.monotonic()
            calls = self._calls[method]
            while calls and calls[0] <= now - self.WINDOW:
                calls.popleft()
            if len(calls) >= limit:
                return False
            calls.append(now)
            return True
