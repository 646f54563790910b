"""A database outage pauses the worker: a capped, jittered backoff, a loop that really waits, a quiet log.

Checked against the loop before this backoff (``0.25 * 2**failures``, and a wake-up event never
cleared after the pause): the waiting test and the log test saw over a thousand ``_step`` calls in
well under a second, then the loop died with ``OverflowError``. The stop test passed there too: it
guards that the pause, which now ignores other wake-ups, still ends at a stop. The backoff tests
had nothing to import (there was no ``outage`` module).
"""

from __future__ import annotations

import logging
import random
import statistics
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from django.core.management import CommandError, call_command
from django.db import InterfaceError, OperationalError

from container_manager.management.commands import process_container_jobs
from container_manager.worker.hosts import host_name_errors
from container_manager.worker.outage import (
    FIRST_PAUSE_SECONDS,
    LOG_INTERVAL_SECONDS,
    LOGGED_FAILURES,
    Outage,
    backoff_seconds,
)
from container_manager.worker.worker import DB_RETRY_MAX_SECONDS, Worker
from tests.worker.conftest import make_host

CAP = 5.0


def test_the_backoff_never_overflows_nor_passes_its_cap():
    rng = random.Random(14)  # noqa: S311 - seeded: the test repeats
    counts = [*range(10**4), *range(10**4, 10**6, 997), 10**6]
    pauses = [backoff_seconds(n, cap=CAP, rng=rng) for n in counts]
    assert min(pauses) > 0
    assert max(pauses) <= CAP
    # Past the doublings every pause is the jittered cap: between half of it and all of it.
    assert all(CAP / 2 <= p <= CAP for p in pauses[10:])


def test_the_backoff_doubles_then_holds_at_the_cap():
    def median(failures: int) -> float:
        rng = random.Random(failures)  # noqa: S311 - seeded: the test repeats
        return statistics.median(backoff_seconds(failures, cap=CAP, rng=rng) for _ in range(2001))

    # The median of a uniform jitter over [d/2, d] is 3/4 of d.
    expected = [min(CAP, FIRST_PAUSE_SECONDS * 2 ** (n - 1)) * 0.75 for n in range(1, 8)]
    assert [median(n) for n in range(1, 8)] == pytest.approx(expected, rel=0.05)


def test_the_backoff_is_jittered():
    rng = random.Random(7)  # noqa: S311 - seeded: the test repeats
    for failures in (1, 3, 50, 10**6):
        pauses = [backoff_seconds(failures, cap=CAP, rng=rng) for _ in range(200)]
        ceiling = min(CAP, FIRST_PAUSE_SECONDS * 2.0 ** min(failures - 1, 30))
        assert len(set(pauses)) == 200  # No two workers wake in the same instant.
        assert all(ceiling / 2 <= p <= ceiling for p in pauses)
        assert max(pauses) - min(pauses) > ceiling / 3  # Spread over the range, not a wobble.


def test_a_long_outage_logs_a_few_lines_then_one_per_interval(caplog: pytest.LogCaptureFixture):
    now = [0.0]
    outage = Outage("database_error", cap=CAP, recovered_event="database_back", clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="container_manager.worker")
    failures = 0
    while now[0] < 600:  # Ten minutes down, at the pace the pauses set.
        now[0] += outage.failed(OperationalError("connection refused"))
        failures += 1
    outage.recovered()
    errors = [r for r in caplog.records if "event=database_error" in r.getMessage()]
    assert all(r.levelno == logging.WARNING for r in errors)
    assert LOGGED_FAILURES < len(errors) <= LOGGED_FAILURES + 600 / LOG_INTERVAL_SECONDS + 1
    # Nothing is hidden: the lines and the failures they say were left unlogged add up.
    back = [r for r in caplog.records if "event=database_back" in r.getMessage()]
    assert len(back) == 1
    assert f"failures={failures} " in back[0].getMessage()
    unlogged = sum(int(r.getMessage().split(" unlogged=")[1].split()[0]) for r in [*errors, *back])
    assert len(errors) + unlogged == failures
    # A new outage starts over, with its first failures logged one by one again.
    caplog.clear()
    for _ in range(LOGGED_FAILURES):
        outage.failed(InterfaceError("connection already closed"))
    assert sum("event=database_error" in r.getMessage() for r in caplog.records) == LOGGED_FAILURES


class FakeConnection:
    """Django's connection as the loop sees it: ``connection`` stays None until a query opens it."""

    connection: object | None = None
    in_atomic_block = False


class FakeOutage:
    """Stand in for ``Worker._step``: the database fails until ``end`` (a monotonic time), then works.

    With ``idle_turns``, every turn after a failure has nothing due and touches no database.
    """

    def __init__(self, end: float, *, idle_turns: bool = False) -> None:
        self.end = end
        self.idle_turns = idle_turns
        self.failed: list[float] = []
        self.succeeded: list[float] = []
        self._just_failed = False

    def step(self) -> None:
        now = time.monotonic()
        if self.idle_turns and self._just_failed:
            self._just_failed = False
            return
        if now < self.end:
            self.failed.append(now)
            self._just_failed = True
            raise OperationalError(
                'connection to server at "127.0.0.1", port 5432 failed: Connection refused'
            )
        FakeConnection.connection = object()
        self.succeeded.append(now)


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Worker]:
    worker = Worker(worker_id="outage-test", concurrency=2)
    monkeypatch.setattr("container_manager.worker.worker.connection", FakeConnection)
    monkeypatch.setattr(FakeConnection, "connection", None)

    def close() -> None:
        FakeConnection.connection = None

    monkeypatch.setattr("container_manager.worker.worker.drop_connection", close)
    yield worker
    worker.request_stop()


def run_loop(worker: Worker) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            worker._loop()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="worker-loop", daemon=True)
    thread.start()
    return thread, errors


def keep_waking(worker: Worker, until: Callable[[], bool]) -> threading.Thread:
    """Set the worker's wake-up event every 10 ms, as runner reports and the listener do."""

    def target() -> None:
        while not until():
            worker._wake.set()
            time.sleep(0.01)

    thread = threading.Thread(target=target, name="waker", daemon=True)
    thread.start()
    return thread


def test_the_loop_really_waits_through_an_outage_and_resumes(worker: Worker):
    seconds = 3.0
    outage = FakeOutage(time.monotonic() + seconds)
    worker._step = outage.step  # type: ignore[method-assign]
    thread, errors = run_loop(worker)
    keep_waking(worker, lambda: not thread.is_alive())
    deadline = time.monotonic() + seconds + DB_RETRY_MAX_SECONDS + 2
    while not outage.succeeded and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.request_stop()
    thread.join(5)
    assert errors == []
    assert not thread.is_alive()
    # Pauses of at least 0.25, 0.5, 1 and 2 s fit four tries into 3 s, wake-ups or not.
    assert 2 <= len(outage.failed) <= 4, len(outage.failed)
    gaps = [b - a for a, b in zip(outage.failed, outage.failed[1:], strict=False)]
    assert all(gap >= FIRST_PAUSE_SECONDS / 2 - 0.01 for gap in gaps), gaps
    # And it came back within one capped pause of the database's return.
    assert outage.succeeded
    assert outage.succeeded[0] - outage.end <= DB_RETRY_MAX_SECONDS + 0.5


def test_a_stop_ends_the_pause_at_once(worker: Worker):
    outage = FakeOutage(time.monotonic() + 3600)
    worker._step = outage.step  # type: ignore[method-assign]
    thread, errors = run_loop(worker)
    time.sleep(2.0)  # Into the third pause or so: 1 to 2 s long.
    asked = time.monotonic()
    worker.request_stop()
    thread.join(5)
    assert errors == []
    assert not thread.is_alive()
    assert time.monotonic() - asked < 0.2
    assert 2 <= len(outage.failed) <= 4


def test_an_outage_logs_its_first_failures_then_stays_quiet(worker: Worker, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="container_manager.worker")
    outage = FakeOutage(time.monotonic() + 2.5)
    worker._step = outage.step  # type: ignore[method-assign]
    thread, errors = run_loop(worker)
    keep_waking(worker, lambda: not thread.is_alive())
    deadline = time.monotonic() + 10
    while not outage.succeeded and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.request_stop()
    thread.join(5)
    assert errors == []
    lines = [r.getMessage() for r in caplog.records]
    errors_logged = [line for line in lines if "event=database_error" in line]
    assert 1 <= len(errors_logged) <= LOGGED_FAILURES
    assert sum("event=database_back" in line for line in lines) == 1


def test_a_turn_that_touched_no_database_does_not_end_the_outage(
    worker: Worker, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO, logger="container_manager.worker")
    outage = FakeOutage(time.monotonic() + 2.5, idle_turns=True)
    worker._step = outage.step  # type: ignore[method-assign]
    worker._idle_timeout = lambda: 0.0  # type: ignore[method-assign]
    thread, errors = run_loop(worker)
    deadline = time.monotonic() + 10
    while not outage.succeeded and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.request_stop()
    thread.join(5)
    assert errors == []
    # The pauses still grew (0.25 s at least, then 0.5, then 1): no restart from the first pause.
    assert len(outage.failed) <= 4, outage.failed
    back = [r.getMessage() for r in caplog.records if "event=database_back" in r.getMessage()]
    assert len(back) == 1
    assert f"failures={len(outage.failed)} " in back[0]


@pytest.mark.django_db
def test_a_worker_started_while_the_database_is_down_waits_for_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    # The one query before the loop checks the --host names; on main its error ended the process.
    make_host("alpha")
    calls: list[list[str]] = []

    def down_twice(names: list[str]) -> list[str]:
        calls.append(list(names))
        if len(calls) <= 2:
            raise OperationalError(
                'connection to server at "127.0.0.1", port 5432 failed: Connection refused'
            )
        return host_name_errors(names)

    monkeypatch.setattr(process_container_jobs, "host_name_errors", down_twice)
    ran: list[Worker] = []
    monkeypatch.setattr(Worker, "run", lambda self: ran.append(self) or 0)
    caplog.set_level(logging.INFO, logger="container_manager.worker")
    call_command("process_container_jobs", hosts=["alpha"])
    assert calls == [["alpha"]] * 3
    assert [w.host_names for w in ran] == [("alpha",)]
    lines = [r.getMessage() for r in caplog.records]
    assert sum("event=database_error" in line for line in lines) == 2
    assert sum("event=database_back" in line for line in lines) == 1
    # The names are still checked once the database answers.
    with pytest.raises(CommandError, match="Unknown executor host: nope"):
        call_command("process_container_jobs", hosts=["nope"])
