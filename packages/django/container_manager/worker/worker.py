"""The worker loop: claim -> launch -> track -> harvest -> clean up, with leases and crash recovery."""

from __future__ import annotations

import logging
import os
import queue
import random
import signal
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from django.db import DatabaseError, InterfaceError, connection

from container_manager.conf import AppSettings, app_settings
from container_manager.executors.registry import get_plugin_manager
from container_manager.models import ContainerJob
from container_manager.worker import claims, hosts, logstore
from container_manager.worker.logevents import log_event
from container_manager.worker.outage import Outage, drop_connection
from container_manager.worker.reconcile import Reconciler
from container_manager.worker.reports import Next, Recorder
from container_manager.worker.runner import Runner
from container_manager.worker.tracking import Report, StopReason, Tracked
from container_manager.worker.wakeup import QueueListener
from container_manager.workers import WorkerProcess
from container_manager_core.plugins import PluginManager
from container_manager_core.types import Violation

# How often what running jobs printed is stored, at most (sooner when a job printed FLUSH_BYTES).
LOG_STORE_SECONDS = 1.0
# How often running jobs are checked for a cancel request, at most.
CANCEL_CHECK_SECONDS = 1.0
# Longest pause after a database error before trying again (PostgreSQL restarts take seconds).
DB_RETRY_MAX_SECONDS = 5.0
# How long a finishing worker waits for its last stops and removals (each call has its own timeout).
BACKGROUND_JOIN_SECONDS = 30.0


def default_worker_id() -> str:
    """Return an id unique to this process: host name, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Every:
    """A cadence: ``due()`` is true once per ``interval`` seconds (and at once when first asked)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.next_at = 0.0

    def due(self, now: float) -> bool:
        if now < self.next_at:
            return False
        self.next_at = now + self.interval
        return True

    def soon(self) -> None:
        self.next_at = 0.0


class Worker:
    """Run jobs from the database queue until told to stop (or, with ``once``, until the queue is empty)."""

    def __init__(
        self,
        *,
        worker_id: str | None = None,
        concurrency: int = 4,
        max_jobs: int | None = None,
        once: bool = False,
        host_names: Sequence[str] = (),
        poll_interval: float | None = None,
        manager: PluginManager | None = None,
        settings: AppSettings | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"Concurrency must be at least 1, got {concurrency!r}.")
        self.settings = settings or app_settings()
        self.worker_id = worker_id or default_worker_id()
        self.concurrency = concurrency
        self.max_jobs = max_jobs
        self.once = once
        self.host_names = tuple(host_names)
        self.poll_interval = poll_interval or self.settings.POLL_INTERVAL
        self.manager = manager or get_plugin_manager()
        self.tracked: dict[str, Tracked] = {}
        self.claimed_total = 0
        self.finished_total = 0
        self._reports: queue.SimpleQueue[Report] = queue.SimpleQueue()
        self._pending: deque[Report] = deque()
        self._background: set[threading.Thread] = set()
        self._wake = threading.Event()
        self._stop_requested = False
        self._signals = 0
        self._grace_deadline: float | None = None
        self._rng = random.Random()  # noqa: S311 - host weighting, not security
        self._runner = Runner(
            self.manager,
            self._reports,
            limits=self.settings.policy_limits(),
            stop_grace_seconds=self.settings.STOP_GRACE_SECONDS,
            wake=self._wake.set,
        )
        self._reconciler = Reconciler(self.manager, worker_id=self.worker_id, settings=self.settings)
        self._recorder = Recorder(worker_id=self.worker_id, settings=self.settings, manager=self.manager)
        self._claim_cadence = Every(self.poll_interval)
        # A fast queue poll must not turn into a fast cancel poll: cancels are rare and a second is prompt.
        self._cancel_cadence = Every(max(self.poll_interval, CANCEL_CHECK_SECONDS))
        self._log_cadence = Every(LOG_STORE_SECONDS)
        self._lease_cadence = Every(self.settings.LEASE_SECONDS / 3)
        self._health_cadence = Every(self.settings.HEALTH_CHECK_INTERVAL)
        self._reconcile_cadence = Every(self.settings.RECONCILE_INTERVAL)
        self._queue_empty = False
        self._room_awaited = False  # The last claim left a job waiting for room on these hosts.
        self._listening = False  # Set when the queue listener is on: queued jobs are announced.
        # Set by the listener thread when a job is queued; the main thread claims on its next turn.
        self._job_queued = threading.Event()
        self._listener = QueueListener(self._on_job_queued)

    # Lifecycle ------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop claiming and finish tracking what runs, for up to SHUTDOWN_GRACE_SECONDS."""
        if not self._stop_requested:
            self._stop_requested = True
            self._grace_deadline = time.monotonic() + self.settings.SHUTDOWN_GRACE_SECONDS
            log_event("shutdown_requested", worker=self.worker_id, running=len(self.tracked))
        self._wake.set()

    def _on_job_queued(self) -> None:
        self._job_queued.set()
        self._wake.set()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            # If the user tried to terminate twice, let them: leases and reconciliation recover the rest.
            log_event("shutdown_forced", worker=self.worker_id, signal=signal.Signals(signum).name)
            raise SystemExit(128 + signum)
        self.request_stop()

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def run(self) -> int:
        """Run until stopped; return how many jobs reached a finished state here."""
        previous = self._install_signals()
        listening = self._listening = self._listener.start()
        log_event(
            "worker_started",
            worker=self.worker_id,
            concurrency=self.concurrency,
            hosts=",".join(self.host_names) or "*",
            wake="notify" if listening else "poll",
        )
        try:
            self._loop()
            self._finish_background()
            self._record_stopped()
        finally:
            self._listener.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        left = len(self.tracked)
        log_event("worker_stopped", worker=self.worker_id, finished=self.finished_total, left_running=left)
        return self.finished_total

    def _record_stopped(self) -> None:
        try:
            WorkerProcess.stopped(self.worker_id)
        except (DatabaseError, InterfaceError) as exc:
            # Exiting anyway: the heartbeat ages out after LEASE_SECONDS, as a killed worker's does.
            log_event("stop_not_recorded", worker=self.worker_id, error=str(exc), level=logging.WARNING)

    def _loop(self) -> None:
        outage = Outage(
            "database_error", cap=DB_RETRY_MAX_SECONDS, recovered_event="database_back", worker=self.worker_id
        )
        while not self._should_exit():
            try:
                self._step()
            except (DatabaseError, InterfaceError) as exc:
                # The database went away (restart, failover, a lock): drop the connection and come
                # back later. Containers run on; runner reports wait in the queue for the next turn.
                drop_connection()
                self._lease_cadence.soon()  # Renew first thing when the database is back.
                self._pause(outage.failed(exc))
                continue
            if connection.connection is not None:  # Not a turn with nothing due: this one reached it.
                outage.recovered()
            self._wake.wait(self._idle_timeout())
            self._wake.clear()

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` after a database error: runner reports do not cut it short, a stop does."""
        stop_seen = self._stop_requested
        deadline = time.monotonic() + seconds
        if self._grace_deadline is not None:
            deadline = min(deadline, self._grace_deadline)
        while (left := deadline - time.monotonic()) > 0:
            self._wake.wait(left)
            # request_stop sets the flag before the event, so clearing here cannot lose a stop.
            self._wake.clear()
            if self._stop_requested and not stop_seen:
                return

    def _should_exit(self) -> bool:
        if self._stop_requested:
            if not self.tracked and not self._pending:
                return True
            if self._grace_deadline is not None and time.monotonic() >= self._grace_deadline:
                log_event(
                    "grace_expired",
                    worker=self.worker_id,
                    left_running=len(self.tracked),
                    level=logging.WARNING,
                )
                return True
            return False
        if self.max_jobs is not None and self.claimed_total >= self.max_jobs:
            return not self.tracked and not self._pending
        return self.once and self._queue_empty and not self.tracked and not self._pending

    def _idle_timeout(self) -> float:
        now = time.monotonic()
        cadences = [self._cancel_cadence, self._lease_cadence, self._health_cadence, self._reconcile_cadence]
        if self.tracked:
            cadences.append(self._log_cadence)
        if self._can_claim():
            cadences.append(self._claim_cadence)
        return max(0.0, min(c.next_at for c in cadences) - now)

    # One turn of the loop -------------------------------------------------------------------------

    def _step(self) -> None:
        # No close_old_connections() here: with CONN_MAX_AGE=0 it would reconnect on every turn.
        # A connection the server dropped raises DatabaseError, and _loop closes it then.
        now = time.monotonic()
        if self._reconcile_cadence.due(now):
            self._reconcile()
        if self._health_cadence.due(now):
            hosts.check_health(self.host_names)
        self._apply_reports()
        self._store_output(now)
        # Claims are on a queued job's latency path; the lease and cancel checks that follow can
        # wait the few milliseconds a claim takes.
        announced = self._job_queued.is_set()
        if announced:
            self._job_queued.clear()
            self._claim_cadence.soon()
        # Room first: a turn without room must not use the cadence up, or a job announced while
        # every slot was busy would wait for the next poll (see _finish).
        if self._can_claim() and self._claim_cadence.due(now):
            self._claim(announced=announced)
        if self._lease_cadence.due(now):
            self._renew_leases()
        if self._cancel_cadence.due(now):
            self._check_cancels()

    def _store_output(self, now: float) -> None:
        """Store what running jobs printed: every LOG_STORE_SECONDS, or at once past FLUSH_BYTES."""
        due = self._log_cadence.due(now)
        for tracked in list(self.tracked.values()):
            capture = tracked.capture
            if capture is not None and (capture.untaken >= logstore.FLUSH_BYTES or (due and capture.untaken)):
                logstore.store_new_output(tracked)

    def _can_claim(self) -> bool:
        if self._stop_requested or len(self.tracked) >= self.concurrency:
            return False
        return self.max_jobs is None or self.claimed_total < self.max_jobs

    def _claim(self, *, announced: bool = False) -> None:
        limit = self.concurrency - len(self.tracked)
        if self.max_jobs is not None:
            limit = min(limit, self.max_jobs - self.claimed_total)
        claimed = claims.claim_jobs(
            worker_id=self.worker_id,
            limit=limit,
            host_names=self.host_names,
            default_executor_type=self.settings.DEFAULT_EXECUTOR_TYPE,
            lease_seconds=self.settings.LEASE_SECONDS,
            rng=self._rng,
            announced=announced,
        )
        # Claim again as soon as a slot frees only if every slot was filled and due jobs were left
        # over (an announced job makes a claim due anyway), or a job waits for room on these hosts:
        # room comes when a job ends, and no announcement says so.
        left_over = len(claimed.won) >= limit and claimed.more_due
        self._room_awaited = claimed.waiting
        self._queue_empty = not left_over and not claimed.waiting
        if left_over:
            self._claim_cadence.soon()
        for claim in claimed.won:
            job = claim.job
            host = job.docker_host
            if host is None:  # A claim always places the job; this only satisfies the type checker.
                continue
            self.claimed_total += 1
            tracked = Tracked(
                job=job,
                host=host.to_spec(),
                host_pk=host.pk,
                attempt=job.attempt,
                pinned=claim.pinned,
                previous_execution=job.execution_id,
            )
            log_event("claimed", job=job.pk, host=host.name, attempt=job.attempt, worker=self.worker_id)
            self._launch_claimed(tracked, refusal=claim.refusal)

    def _launch_claimed(self, tracked: Tracked, *, refusal: Violation | None = None) -> None:
        """Launch a job this worker now owns, after the checks every launch passes."""
        prepared = self._recorder.claimed(tracked, refusal=refusal)
        if prepared.follow:
            self._follow(tracked)
        else:
            self._carry_out(tracked, prepared)

    def _follow(self, tracked: Tracked) -> None:
        if tracked.execution_id:  # Adopted while it runs: its attempt goes on, its output is read again.
            logstore.open_attempt(tracked, worker_id=self.worker_id, adopted=True)
        self.tracked[tracked.pk] = tracked
        self._runner.start(tracked)

    def _reconcile(self) -> None:
        served = list(hosts.active_hosts(self.host_names))
        for tracked in self._reconciler.run(served, set(self.tracked)):
            if not tracked.execution_id:
                # Taken over while launching: a re-launch is a launch, checked as a fresh claim is.
                self._launch_claimed(tracked)
            else:
                self._follow(tracked)

    def _renew_leases(self) -> None:
        # The heartbeat rides on the lease cadence: a worker is live exactly while it could hold a lease.
        WorkerProcess.beat(
            self.worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            concurrency=self.concurrency,
            host_names=self.host_names,
            running=len(self.tracked),
        )
        lost = ContainerJob.renew_leases(self.worker_id, list(self.tracked), self.settings.LEASE_SECONDS)
        for pk in lost:
            self._abandon(pk, "lease lost: another worker took the job over")

    def _check_cancels(self) -> None:
        running = [t.pk for t in self.tracked.values() if t.execution_id and not t.stop_reason]
        if not running:
            return
        for pk in ContainerJob.cancels_requested(running):
            tracked = self.tracked[pk]
            tracked.stop_reason = StopReason.CANCELLED
            log_event("cancelling", job=pk, execution=tracked.execution_id, host=tracked.host.name)
            self._in_background(self._runner.stop, tracked)

    def _in_background(self, func: Callable[[Tracked], None], tracked: Tracked) -> None:
        thread = threading.Thread(
            target=func, args=(tracked,), name=f"{func.__name__}-{tracked.pk}", daemon=True
        )
        self._background = {t for t in self._background if t.is_alive()}
        self._background.add(thread)
        thread.start()

    def _finish_background(self) -> None:
        # Stops and removals still under way when the loop ends (--once, --max-jobs, shutdown) get a
        # bounded wait, so a finished run leaves no container behind for the next reconcile to find.
        deadline = time.monotonic() + BACKGROUND_JOIN_SECONDS
        for thread in list(self._background):
            thread.join(max(0.0, deadline - time.monotonic()))
        if left := sum(t.is_alive() for t in self._background):
            log_event("background_unfinished", worker=self.worker_id, calls=left, level=logging.WARNING)

    def _abandon(self, pk: str, why: str) -> None:
        tracked = self.tracked.pop(pk, None)
        if tracked is not None:
            tracked.abandoned = True
            tracked.watch_wake.set()
            log_event("abandoned", job=pk, execution=tracked.execution_id, host=tracked.host.name, why=why)

    # Reports from runner threads ------------------------------------------------------------------

    def _apply_reports(self) -> None:
        while True:
            try:
                self._pending.append(self._reports.get_nowait())
            except queue.Empty:
                break
        while self._pending:
            report = self._pending[0]
            # Identity, not the id: a job abandoned and then adopted again has a new Tracked.
            if self.tracked.get(report.tracked.pk) is report.tracked and not report.tracked.abandoned:
                self._carry_out(report.tracked, self._recorder.apply(report))
            # Only drop a report once applied: a database error above leaves it for the next turn.
            self._pending.popleft()

    def _carry_out(self, tracked: Tracked, step: Next) -> None:
        """Do what recording an event on ``tracked`` asks of the loop."""
        if step.check_health:
            self._health_cadence.soon()
        if step.follow:
            return
        if step.saved:
            self.tracked.pop(tracked.pk, None)
            if step.finished:
                self.finished_total += 1
            if not self._listening or self._room_awaited:
                self._claim_cadence.soon()  # A slot is free: look for a job now, not at the next poll.
            # With announcements on, that look would cost a query per job and mostly find nothing. A
            # job already waiting has left the claim cadence due (announced while every slot was busy,
            # or a claim that filled them all), and that stays so until a slot frees and claims.
        else:
            self._abandon(tracked.pk, step.why)
        if step.stop:
            self._in_background(self._stop_and_remove, tracked)
        elif step.remove:
            self._in_background(self._runner.remove, tracked)

    def _stop_and_remove(self, tracked: Tracked) -> None:
        self._runner.stop(tracked)
        self._runner.remove(tracked)
