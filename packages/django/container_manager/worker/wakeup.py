"""Wake the worker when PostgreSQL announces a queued job (LISTEN/NOTIFY), instead of polling fast.

Migration 0002 installs triggers that NOTIFY ``QUEUE_CHANNEL`` whenever a job row becomes pending
or retrying. The listener holds its own connection (Django's is the main thread's) and calls
``on_notify`` for every announcement, and once after each (re)connection because announcements
sent while it was away are lost. Polling at POLL_INTERVAL stays as the fallback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections

from container_manager.worker.logevents import log_event
from container_manager.worker.outage import Outage

QUEUE_CHANNEL = "container_manager_queue"
# How often the listening thread looks up from the socket to see whether it should stop.
STOP_CHECK_SECONDS = 1.0
# Longest pause before reconnecting after the connection broke (a restart takes seconds).
RECONNECT_MAX_SECONDS = 5.0
# Connection parameters Django adds for its own cursors, which a plain connection does not take.
_DJANGO_ONLY_PARAMS = ("cursor_factory", "context", "prepare_threshold")


class QueueListener:
    """Call ``on_notify`` from a daemon thread whenever a job is queued; ``start`` says if it runs."""

    def __init__(self, on_notify: Callable[[], None], *, alias: str = "default") -> None:
        self._on_notify = on_notify
        self._alias = alias
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start listening; False (and nothing started) when the database cannot announce jobs."""
        if connections[self._alias].vendor != "postgresql":
            return False
        try:
            import psycopg  # noqa: F401  # the announcements need psycopg 3's notifies()
        except ImportError:
            log_event("queue_listener_unavailable", why="psycopg 3 is not installed; polling instead")
            return False
        self._thread = threading.Thread(target=self._run, name="queue-listener", daemon=True)
        self._thread.start()
        return True

    def stop(self, timeout: float = STOP_CHECK_SECONDS + 1.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        # Like the worker's loop: a capped, jittered pause, and a log that thins out in a long outage.
        outage = Outage("queue_listener_error", cap=RECONNECT_MAX_SECONDS)
        while not self._stopping.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(f"LISTEN {QUEUE_CHANNEL}")
                    outage.recovered()
                    self._on_notify()  # Whatever was announced while nobody listened.
                    while not self._stopping.is_set():
                        for _notice in conn.notifies(timeout=STOP_CHECK_SECONDS):
                            self._on_notify()
            except Exception as exc:  # Any failure only costs promptness: polling still finds the jobs.
                self._stopping.wait(outage.failed(exc))

    def _connect(self) -> Any:
        return plain_connection(self._alias)


def plain_connection(alias: str = "default") -> Any:
    """Open a psycopg 3 autocommit connection to Django's database ``alias``, outside Django's pool.

    LISTEN needs a connection of its own that no request or transaction ever borrows.
    """
    import psycopg

    params = connections[alias].get_connection_params()
    for name in _DJANGO_ONLY_PARAMS:
        params.pop(name, None)
    return psycopg.connect(**params, autocommit=True)
