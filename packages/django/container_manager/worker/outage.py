"""Wait out a database outage: a capped, jittered backoff, and a log that reports without flooding.

The worker's loop and the queue listener each keep an ``Outage`` for their connection: ``failed``
counts a failure, logs it (each of the first few, then one line per ``LOG_INTERVAL_SECONDS`` with
the count of failures left unlogged) and returns the pause before the next try; ``recovered`` ends
the outage.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, InterfaceError, connection

from container_manager.worker.logevents import log_event

# The pause after the first failure; it doubles with each further one, up to the caller's cap.
FIRST_PAUSE_SECONDS = 0.5
# Doublings are counted up to this, so 2**n stays a small float for any number of failures.
MAX_DOUBLINGS = 30
# Failures logged one line each; after them, one line per LOG_INTERVAL_SECONDS at most.
LOGGED_FAILURES = 3
LOG_INTERVAL_SECONDS = 60.0


def backoff_seconds(
    failures: int, *, cap: float, rng: random.Random, first: float = FIRST_PAUSE_SECONDS
) -> float:
    """Return the pause after ``failures`` in a row: ``first * 2**(failures - 1)`` up to ``cap``, jittered.

    The jitter keeps between half and all of it, so workers that lost the database together do not
    all come back in the same instant.
    """
    doublings = min(max(failures - 1, 0), MAX_DOUBLINGS)
    ceiling = min(cap, first * 2.0**doublings)
    return ceiling * (0.5 + 0.5 * rng.random())


class Outage:
    """Consecutive failures of one connection: the pause after each, and the log lines about them."""

    def __init__(
        self,
        event: str,
        *,
        cap: float,
        recovered_event: str = "",
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        **fields: Any,
    ) -> None:
        self.failures = 0
        self._event = event
        self._recovered_event = recovered_event
        self._cap = cap
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._clock = clock
        self._fields = fields
        self._began = 0.0
        self._unlogged = 0
        self._next_log = 0.0

    def failed(self, exc: BaseException) -> float:
        """Count a failure, log it unless the log already said enough lately; return the pause to take."""
        now = self._clock()
        self.failures += 1
        if self.failures == 1:
            self._began = now
        pause = backoff_seconds(self.failures, cap=self._cap, rng=self._rng)
        if self.failures > LOGGED_FAILURES and now < self._next_log:
            self._unlogged += 1
            return pause
        log_event(
            self._event,
            error=str(exc).strip() or repr(exc),
            failures=self.failures,
            unlogged=self._unlogged,
            down_for=round(now - self._began, 1),
            retry_in=round(pause, 2),
            level=logging.WARNING,
            **self._fields,
        )
        self._unlogged = 0
        self._next_log = now + LOG_INTERVAL_SECONDS
        return pause

    def recovered(self) -> None:
        """End the outage (if there was one), saying how long it lasted and how many failures went unlogged."""
        if not self.failures:
            return
        if self._recovered_event:
            log_event(
                self._recovered_event,
                failures=self.failures,
                unlogged=self._unlogged,
                down_for=round(self._clock() - self._began, 1),
                **self._fields,
            )
        self.failures = 0
        self._unlogged = 0
        self._next_log = 0.0


def drop_connection() -> None:
    """Close this thread's broken database connection, so the next query opens a new one."""
    # Inside an outer transaction (a test's, or a caller's) closing would only break it.
    if not connection.in_atomic_block:
        with contextlib.suppress(DatabaseError, InterfaceError):
            connection.close()


def when_reachable[T](
    func: Callable[[], T], *, cap: float, sleep: Callable[[float], None] = time.sleep, **fields: Any
) -> T:
    """Return ``func()`` once the database answers it, pausing and logging as the loop does meanwhile.

    For the worker's start-up queries: a worker started while the database is down waits for it.
    """
    outage = Outage("database_error", cap=cap, recovered_event="database_back", **fields)
    while True:
        try:
            result = func()
        except (DatabaseError, InterfaceError) as exc:
            drop_connection()
            sleep(outage.failed(exc))
            continue
        outage.recovered()
        return result
