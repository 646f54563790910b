"""One engine event stream per host, shared by every wait: which containers died, and which saw an OOM.

A stream per waiting job would mean one open request per running container and, on every exit, a
second request to ask the event log about OOM kills. Instead one thread per host follows the
``start``, ``kill``, ``die``, ``destroy`` and ``oom`` events of this owner's containers and remembers
them. A ``die`` carries the exit code, so a covered container's final state needs no inspect either.

Coverage is what makes the memory trustworthy. The stream is reopened every ``STREAM_SECONDS``
with ``since`` set to the previous ``until``, so the engine replays whatever fell in between and
nothing is missed. After a failure that cannot be known, so the *epoch* changes: a container is
*covered* only if it was created (or its state read) while the current epoch was live, and only
then is "no event seen" taken as "nothing happened". Everything else falls back to asking the
engine directly, as it would without the monitor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
import docker

from docker_executor.events import open_events
from docker_executor.records import Recent

logger = logging.getLogger("docker_executor")

# Length of one event request; the next one replays from where it ended.
STREAM_SECONDS = 10.0
# A monitor nobody has used for this long stops (hosts come and go; a thread per host must not).
IDLE_SECONDS = 60.0
# How long the first caller waits for the stream to open before falling back to direct checks.
FIRST_OPEN_SECONDS = 2.0
# Pause before reopening after a failure, growing to the last value.
REOPEN_PAUSES = (0.2, 1.0, 2.0, 5.0)
# Overlap of consecutive requests: a duplicate event is harmless, a missed one is not.
OVERLAP_SECONDS = 0.001


@attrs.frozen
class EngineExit:
    """A container's run as the stream saw it: the engine's clock at ``start`` and ``die``."""

    exit_code: int
    started_at: datetime
    finished_at: datetime


class HostEvents:
    """Follow one host's events for this owner's containers in a daemon thread, started on demand."""

    def __init__(
        self,
        name: str,
        api: Callable[[], docker.APIClient],
        *,
        filters: Mapping[str, list[str]],
        call_timeout: float,
    ) -> None:
        self._name = name
        self._api = api
        self._filters = {
            **filters,
            "type": ["container"],
            "event": ["start", "kill", "die", "destroy", "oom"],
        }
        self._call_timeout = call_timeout
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._live = False
        self._epoch = 0
        self._last_used = time.monotonic()
        self._ended: Recent[bool] = Recent()
        self._ooms: Recent[bool] = Recent()
        self._kills: Recent[bool] = Recent()
        self._starts: Recent[datetime] = Recent()
        self._exits: Recent[tuple[int, datetime]] = Recent()
        self._destroyed: Recent[bool] = Recent()
        self._covered: Recent[int] = Recent()  # container id -> epoch since which its events are all seen

    # Used by the plugin --------------------------------------------------------------------------

    def live_epoch(self) -> int | None:
        """Return the current epoch once the stream is open; None means "check the engine directly".

        Starts the thread on first use and waits up to FIRST_OPEN_SECONDS for it; while a broken
        stream is being reopened, returns None at once rather than stall the caller.
        """
        with self._changed:
            self._last_used = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"docker-events-{self._name}", daemon=True
                )
                self._thread.start()
                self._changed.wait_for(lambda: self._live or self._thread is None, FIRST_OPEN_SECONDS)
            return self._epoch if self._live else None

    def cover(self, container_id: str, epoch: int) -> None:
        """Record that every event of ``container_id`` from ``epoch`` on reaches this monitor.

        True for a container created, or found still running, after ``epoch`` opened.
        """
        self._covered.put(container_id, epoch)

    def covers(self, container_id: str) -> bool:
        with self._changed:
            return self._live and self._covered.get(container_id) == self._epoch

    def ended(self, container_ids: Iterable[str]) -> list[str]:
        """Return the containers whose exit (or removal) the stream has delivered."""
        return [cid for cid in container_ids if cid in self._ended]

    def oom_seen(self, container_id: str) -> bool:
        return container_id in self._ooms

    def exit_of(self, container_id: str) -> EngineExit | None:
        """Return how a covered container's one run ended, or None when the stream cannot tell it all.

        Only for a container whose ``start`` and ``die`` both arrived and that still exists: the
        engine logs ``die`` after the output is copied and the state is saved, and an ``oom`` it
        handled before the exit comes earlier in the stream, so an inspect would say no more.
        """
        if not self.covers(container_id) or container_id in self._destroyed:
            return None
        started, ended = self._starts.get(container_id), self._exits.get(container_id)
        if started is None or ended is None:
            return None
        return EngineExit(exit_code=ended[0], started_at=started, finished_at=ended[1])

    def kill_seen(self, container_id: str) -> bool:
        """Say whether the engine signalled the container (a stop, or its own shutdown stopping it)."""
        return container_id in self._kills

    def wait_for_change(self, epoch: int, timeout: float, watching: Iterable[str] = ()) -> None:
        """Block until a container ends, the epoch changes or the stream breaks, or ``timeout`` passes.

        Returns at once if one of ``watching`` has already ended: checked under the lock the stream
        notifies with, an end recorded since the caller last looked cannot be slept through.
        """
        with self._changed:
            self._last_used = time.monotonic()
            if self._live and self._epoch == epoch and not any(cid in self._ended for cid in watching):
                self._changed.wait(timeout)

    def forget(self, container_id: str) -> None:
        self._ended.forget(container_id)
        self._ooms.forget(container_id)
        self._kills.forget(container_id)
        self._starts.forget(container_id)
        self._exits.forget(container_id)
        self._destroyed.forget(container_id)
        self._covered.forget(container_id)

    # The thread ----------------------------------------------------------------------------------

    def _run(self) -> None:
        since: float | None = None
        failures = 0
        try:
            while time.monotonic() - self._last_used < IDLE_SECONDS:
                until = time.time() + STREAM_SECONDS
                try:
                    with open_events(
                        self._api(),
                        filters=self._filters,
                        since=since,
                        until=until,
                        timeout=self._call_timeout,
                    ) as events:
                        self._opened(continued=since is not None)
                        for event in events:
                            self._record(event)
                    since = until - OVERLAP_SECONDS  # the engine sent everything up to ``until``
                    failures = 0
                except Exception as exc:  # Any failure only means callers check the engine directly.
                    since = None
                    self._broken()
                    pause = REOPEN_PAUSES[min(failures, len(REOPEN_PAUSES) - 1)]
                    failures += 1
                    logger.debug(
                        "Event stream of host %r broke (%s); reopening in %.1f s.", self._name, exc, pause
                    )
                    time.sleep(pause)
        finally:
            with self._changed:
                self._live = False
                self._thread = None
                self._changed.notify_all()

    def _opened(self, *, continued: bool) -> None:
        with self._changed:
            if not (continued and self._live):
                self._epoch += 1  # after a gap nothing before this moment can be vouched for
            self._live = True
            self._changed.notify_all()

    def _broken(self) -> None:
        with self._changed:
            self._live = False
            self._changed.notify_all()

    def _record(self, event: Mapping[str, Any]) -> None:
        container_id = str(event.get("id") or event.get("Actor", {}).get("ID") or "")
        action = str(event.get("Action") or event.get("status") or "")
        if not container_id:
            return
        # Recorded in the stream's order, so an oom or kill is known before its die wakes anyone.
        if action == "oom":
            self._ooms.put(container_id, True)
        elif action == "kill":
            self._kills.put(container_id, True)
        elif action == "start":
            self._starts.put(container_id, _event_time(event))
            self._exits.forget(container_id)  # a restarted container's earlier exit is over
        elif action in ("die", "destroy"):
            if action == "destroy":
                self._destroyed.put(container_id, True)
            elif (code := _exit_code(event)) is not None:
                self._exits.put(container_id, (code, _event_time(event)))
            self._ended.put(container_id, True)
            # Only an end is worth waking the waiters for: each wake-up costs every waiting runner.
            with self._changed:
                self._changed.notify_all()


def _event_time(event: Mapping[str, Any]) -> datetime:
    nanos = event.get("timeNano")
    seconds = int(nanos) / 1e9 if isinstance(nanos, int) else float(event.get("time") or time.time())
    return datetime.fromtimestamp(seconds, UTC)


def _exit_code(event: Mapping[str, Any]) -> int | None:
    """Return the ``die`` event's exit code; None if the engine left it out or it is unreadable."""
    text = (event.get("Actor") or {}).get("Attributes", {}).get("exitCode")
    try:
        return int(text)
    except (TypeError, ValueError):
        return None
