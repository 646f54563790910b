"""The executor side of one job, run in its own thread: launch, wait for the exit, collect the results.

Runner threads never touch the database; they send reports to the main thread, which owns the
one database connection and writes every change with a guarded UPDATE.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable

from container_manager.states import TerminationReason
from container_manager.worker.logevents import log_event
from container_manager.worker.logstore import FLUSH_BYTES, new_capture
from container_manager.worker.tracking import (
    Exited,
    HostBack,
    HostDown,
    Launched,
    LaunchRefused,
    Report,
    StopReason,
    Tracked,
    UsageSampled,
    Vanished,
)
from container_manager_core.errors import (
    ExecutionNotFound,
    ExecutorError,
    ExecutorUnavailable,
    HostMisconfigured,
    ImagePullFailed,
    LaunchFailed,
    PolicyViolationError,
)
from container_manager_core.logstream import LogStream, pieces_of
from container_manager_core.plugins import PluginManager
from container_manager_core.types import (
    Execution,
    ExecutionLogs,
    ExecutionState,
    ExecutionStatus,
    JobSpec,
    PolicyLimits,
    ResourceUsage,
)

# The first wait for an exit; each later one doubles, up to WAIT_SLICE_SECONDS, with a usage sample
# in between (short jobs are never sampled, which spares them the calls).
FIRST_USAGE_SAMPLE_SECONDS = 2.0
# Longest single wait for an exit (the executor reads the state meanwhile): the deadline and the
# usage samples are looked at between two waits.
WAIT_SLICE_SECONDS = 30.0
# Longest wait for a retried job's previous container to be gone before relaunching.
REMOVAL_WAIT_SECONDS = 30.0
# Pause between launches of an adopted container that was created but not yet started.
ADOPT_RECHECK_SECONDS = 2.0
# Pause between attempts while the engine is unreachable, growing to the maximum.
RETRY_PAUSE_SECONDS = (0.5, 1.0, 2.0, 5.0)
# Longest wait, once the container has exited, for its followed output to be read to the end;
# past it the harvest reads the logs the old way (the engine's own copy, capped).
FOLLOW_DRAIN_SECONDS = 30.0
# Harvests the host refuses (not an unreachable engine, which is waited for) before the job ends
# without its output: a refusal caused by the host's config would otherwise repeat for ever.
HARVEST_ATTEMPTS = 5


class Runner:
    """Drive one tracked job through the executor and report each step on ``reports``."""

    def __init__(
        self,
        manager: PluginManager,
        reports: queue.SimpleQueue[Report],
        *,
        limits: PolicyLimits,
        stop_grace_seconds: float,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self._pm = manager
        self._reports = reports
        self._limits = limits
        self._grace = stop_grace_seconds
        self._wake = wake

    def start(self, tracked: Tracked) -> threading.Thread:
        """Run ``tracked`` in a daemon thread (daemon: a worker that must exit never waits for the engine)."""
        thread = threading.Thread(target=self.run, args=(tracked,), name=f"job-{tracked.pk}", daemon=True)
        thread.start()
        return thread

    def _send(self, report: Report) -> None:
        self._reports.put(report)
        self._wake()

    def run(self, tracked: Tracked) -> None:
        """Launch if needed, then wait for the exit and harvest; every outcome becomes a report."""
        while not tracked.abandoned:
            try:
                if tracked.spec is not None and not tracked.execution_id and not self._launch(tracked):
                    return
                self._watch(tracked)
                return
            except Exception as exc:  # A runner must always report, or its job would stay tracked for ever.
                log_event(
                    "runner_error",
                    job=tracked.pk,
                    host=tracked.host.name,
                    error=repr(exc),
                    level=logging.ERROR,
                )
                if not tracked.execution_id:
                    self._send(HostDown(tracked, f"Unexpected executor error: {exc!r}.", during_launch=True))
                    return
                time.sleep(RETRY_PAUSE_SECONDS[-1])  # Launched: keep following it.

    def _launch(self, tracked: Tracked) -> bool:
        spec = tracked.spec
        if spec is None:
            raise ValueError(f"Job {tracked.pk!r} has no spec to launch.")
        try:
            if tracked.previous_execution:
                # The name is derived from the job id: an old exited container would be adopted.
                self._remove_for_good(tracked, tracked.previous_execution)
            execution = self._pm.launch_job(tracked.host, spec, self._limits)
            if execution.adopted:
                execution = self._until_started(tracked, spec, execution)
        except PolicyViolationError as exc:
            self._send(LaunchRefused(tracked, TerminationReason.LAUNCH_FAILED, str(exc)))
            return False
        except ExecutorUnavailable as exc:
            self._send(HostDown(tracked, str(exc), during_launch=True))
            return False
        except ImagePullFailed as exc:
            self._send(LaunchRefused(tracked, TerminationReason.IMAGE_PULL_FAILED, str(exc)))
            return False
        except (LaunchFailed, ExecutorError) as exc:
            self._send(LaunchRefused(tracked, TerminationReason.LAUNCH_FAILED, str(exc)))
            return False
        tracked.execution_id = execution.execution_id
        if tracked.deadline is None and spec.timeout_seconds:
            tracked.deadline = time.time() + spec.timeout_seconds
        self._send(Launched(tracked, execution.execution_id, execution.adopted))
        return True

    def _until_started(self, tracked: Tracked, spec: JobSpec, execution: Execution) -> Execution:
        """Return once an adopted container has been started.

        A container created by a worker that died before starting it is left alone by the plugin
        for a while (its creator may still be about to start it); launching again later starts it.
        """
        while not tracked.abandoned:
            if (
                self._pm.check_status(tracked.host, execution.execution_id).state
                is not ExecutionState.PENDING
            ):
                break
            time.sleep(ADOPT_RECHECK_SECONDS)
            execution = self._pm.launch_job(tracked.host, spec, self._limits)
        return execution

    def _remove_for_good(self, tracked: Tracked, execution_id: str) -> None:
        """Remove a container and wait until the engine no longer has it.

        The harvest's own cleanup may be removing it at this moment; the engine then answers the
        second removal with "in progress" while the name is still taken.
        """
        deadline = time.monotonic() + REMOVAL_WAIT_SECONDS
        self._remove(tracked, execution_id)
        while self._pm.check_status(tracked.host, execution_id).state is not ExecutionState.NOT_FOUND:
            if time.monotonic() > deadline:
                raise LaunchFailed(
                    f"The previous container {execution_id!r} of job {tracked.pk!r} could not be removed "
                    f"within {REMOVAL_WAIT_SECONDS:.0f} s, so the job was not relaunched."
                )
            time.sleep(0.1)
            self._remove(tracked, execution_id)

    def _remove(self, tracked: Tracked, execution_id: str) -> None:
        with contextlib.suppress(ExecutionNotFound):
            self._pm.cleanup(tracked.host, execution_id)

    def _start_following(self, tracked: Tracked) -> None:
        if tracked.capture is None:
            tracked.capture = new_capture(tracked)
            if not self._pm.follows_live(tracked.host):
                return  # Its output is read once, at the harvest, and stored then.
            thread = threading.Thread(
                target=self._follow_output, args=(tracked,), name=f"logs-{tracked.pk}", daemon=True
            )
            tracked.following = True
            thread.start()

    def _follow_output(self, tracked: Tracked) -> None:
        """Read the job's output while it runs, into its capture, until the output ends.

        A broken connection (or a read that timed out on a silent job) resumes from the last
        piece's cursor; the main thread stores what the capture holds.
        """
        capture = tracked.capture
        try:
            while capture is not None and not tracked.abandoned and not tracked.harvested:
                try:
                    for piece in self._pm.follow_logs(
                        tracked.host, tracked.execution_id, cursor=capture.cursor
                    ):
                        capture.feed(piece)
                        if capture.untaken >= FLUSH_BYTES:
                            self._wake()
                    capture.complete = True
                    return
                except (ExecutionNotFound, HostMisconfigured):
                    return
                except ExecutorUnavailable as exc:  # Unreachable, or a silent job's read timed out.
                    log_event(
                        "follow_interrupted",
                        job=tracked.pk,
                        execution=tracked.execution_id,
                        error=str(exc) or repr(exc),
                        level=logging.DEBUG,
                    )
                    tracked.watch_wake.set()  # the engine may be down: the watcher looks now
                    time.sleep(RETRY_PAUSE_SECONDS[0])
                except Exception as exc:  # A refusal: the harvest reads the engine's copy instead.
                    log_event(
                        "follow_failed",
                        job=tracked.pk,
                        execution=tracked.execution_id,
                        error=str(exc) or repr(exc),
                        level=logging.WARNING,
                    )
                    return
        finally:
            tracked.output_ended.set()
            tracked.watch_wake.set()
            self._wake()

    def _watch(self, tracked: Tracked) -> None:
        failures = 0
        sample_wait = FIRST_USAGE_SAMPLE_SECONDS
        watched_at = time.monotonic()
        self._start_following(tracked)
        while not tracked.abandoned:
            if tracked.deadline is not None and time.time() >= tracked.deadline and not tracked.stop_reason:
                tracked.stop_reason = StopReason.TIMEOUT
                log_event("timeout", job=tracked.pk, execution=tracked.execution_id, host=tracked.host.name)
                self.stop(tracked)
            slice_ = sample_wait
            if tracked.deadline is not None and not tracked.stop_reason:
                slice_ = min(slice_, max(0.05, tracked.deadline - time.time()))
            try:
                exited = self._wait_for_exit(tracked, slice_)
            except ExecutorError as exc:
                failures = self._unreachable(tracked, exc, failures)
                continue
            if failures:
                failures = 0
                self._send(HostBack(tracked))
            if exited:
                self._harvest(tracked)
                return
            # Still running: the engine measures only live containers, so sample now and then.
            self._sample_usage(tracked, time.monotonic() - watched_at)
            sample_wait = min(WAIT_SLICE_SECONDS, sample_wait * 2)

    def _wait_for_exit(self, tracked: Tracked, seconds: float) -> bool:
        """Wait up to ``seconds`` for the container's exit; True once it exited or is gone.

        While a follower reads the output, the end of the output is the exit's signal: the engine
        is asked once when the follower wakes this thread (or the slice ends), instead of polled
        about twice a second for every running job. Without a live follower (it ended early, or
        the executor has none), the executor polls as before.
        """
        if tracked.following and not tracked.output_ended.is_set():
            tracked.watch_wake.wait(seconds)
            tracked.watch_wake.clear()
            return self._pm.wait_for_exit(tracked.host, tracked.execution_id, 0)
        return self._pm.wait_for_exit(tracked.host, tracked.execution_id, seconds)

    def _sample_usage(self, tracked: Tracked, seconds: float) -> None:
        try:
            usage = self._pm.get_usage(tracked.host, tracked.execution_id)
        except ExecutorError:
            return  # A missed sample only makes the usage figures coarser.
        tracked.sampled = True
        self._send(UsageSampled(tracked, usage, seconds))

    def _followed_logs(self, tracked: Tracked) -> ExecutionLogs | None:
        """Return the output followed to its end, or None if it was not (then it is read at once)."""
        capture = tracked.capture
        if capture is None or not self._pm.follows_live(tracked.host):
            return None
        if not tracked.output_ended.wait(FOLLOW_DRAIN_SECONDS):
            return None
        return capture.logs() if capture.complete else None

    @staticmethod
    def _keep_read_logs(tracked: Tracked, logs: ExecutionLogs | None) -> None:
        """Feed logs read at the harvest to a capture that followed nothing, so the attempt keeps them."""
        capture = tracked.capture
        if logs is None or capture is None or any(capture.total(stream) for stream in LogStream):
            return
        for piece in pieces_of(logs):
            capture.feed(piece)

    def _unreachable(self, tracked: Tracked, exc: ExecutorError, failures: int) -> int:
        # A restarting engine kills what runs there: remember it, so the exit is not blamed on the job.
        tracked.interrupted = True
        if not failures:
            self._send(HostDown(tracked, str(exc), during_launch=False))
        time.sleep(RETRY_PAUSE_SECONDS[min(failures, len(RETRY_PAUSE_SECONDS) - 1)])
        return failures + 1

    def _harvest(self, tracked: Tracked) -> None:
        host, eid = tracked.host, tracked.execution_id
        failures = refusals = 0
        status: ExecutionStatus | None = None
        exit_seen = time.monotonic()
        followed = self._followed_logs(tracked)
        while not tracked.abandoned:
            try:
                # The state and how the run ended, then the logs.
                status = self._pm.check_status(host, eid)
                if status.state is ExecutionState.NOT_FOUND:
                    tracked.harvested = True
                    self._send(Vanished(tracked))
                    return
                error = ""
                logs: ExecutionLogs | None = followed
                if logs is None:
                    try:
                        logs = self._pm.get_logs(host, eid, timestamps=False)
                    except ExecutionNotFound as exc:
                        logs, error = None, str(exc)
                    self._keep_read_logs(tracked, logs)
                if status.interrupted:
                    tracked.interrupted = True  # stopped by the engine (or its operator), not the job
                usage: ResourceUsage | None = None
                if tracked.sampled and logs is not None:
                    # Without a sample taken while it ran, the engine knows nothing: spare the call.
                    with contextlib.suppress(ExecutionNotFound):
                        usage = self._pm.get_usage(host, eid)
                tracked.harvested = True
                self._send(Exited(tracked, status, logs, usage, error, time.monotonic() - exit_seen))
                return
            except ExecutorUnavailable as exc:
                if not isinstance(exc, HostMisconfigured):
                    # Unreachable: wait however long it takes (an engine restart keeps its containers).
                    failures = self._unreachable(tracked, exc, failures)
                    continue
                refused: Exception = exc
            except Exception as exc:  # A refusal, or a bug: the same call would likely fail again.
                refused = exc
            refusals += 1
            error = str(refused) or repr(refused)
            log_event(
                "harvest_failed",
                job=tracked.pk,
                execution=eid,
                host=host.name,
                attempt=refusals,
                error=error,
                level=logging.WARNING,
            )
            if refusals >= HARVEST_ATTEMPTS:
                # The exit is kept if its status was read; the output is missing, and the error says why.
                exited = status if status is not None and status.state is ExecutionState.EXITED else None
                tracked.harvested = True
                self._send(
                    Exited(
                        tracked,
                        exited or ExecutionStatus(ExecutionState.EXITED),
                        None,
                        None,
                        f"The job's results could not be collected after {HARVEST_ATTEMPTS} attempts, "
                        f"so its output is missing: {error}",
                    )
                )
                return
            time.sleep(RETRY_PAUSE_SECONDS[min(refusals - 1, len(RETRY_PAUSE_SECONDS) - 1)])

    def stop(self, tracked: Tracked) -> None:
        """Stop the job's container: SIGTERM, then SIGKILL after the grace period."""
        try:
            self._pm.stop_job(tracked.host, tracked.execution_id, grace_seconds=self._grace)
        except ExecutionNotFound:
            pass  # Gone already: the wait notices and reports it.
        except ExecutorError as exc:
            log_event(
                "stop_failed",
                job=tracked.pk,
                execution=tracked.execution_id,
                host=tracked.host.name,
                error=str(exc),
            )

    def remove(self, tracked: Tracked) -> None:
        """Remove the job's container after its results are saved; a missing container is fine."""
        try:
            self._remove(tracked, tracked.execution_id)
        except ExecutorError as exc:
            # Reconciliation removes it later; the job's result is already safe.
            log_event(
                "cleanup_failed",
                job=tracked.pk,
                execution=tracked.execution_id,
                host=tracked.host.name,
                error=str(exc),
            )
