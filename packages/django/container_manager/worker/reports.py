"""Record what happens to a followed job (its claim, each runner report) with the job's event methods.

The worker's loop owns the threads, the cadences and the set of followed jobs. This module owns
the mapping from each report to the one ``ContainerJob`` method that records it (``mark_running``,
``record_exit``, ``fail_launch``, ``release``), and answers with what the loop must do next: keep
following the job, or drop it, and whether its container goes.

A fault of one job's own data ends that job alone: a row that cannot become a spec fails as
``invalid_spec``, a result the database refuses for its data fails as ``result_unstorable``
(``ContainerJob.record_exit``). Errors of the database itself are raised, for the loop to handle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError

from container_manager.conf import AppSettings
from container_manager.exceptions import InvalidStateTransition
from container_manager.models import ROW_DATA_ERRORS, ContainerJob, Owner
from container_manager.security import log_policy_rejection
from container_manager.states import FINISHED_STATUSES, JobStatus, TerminationReason
from container_manager.worker import hosts, logstore, outcome
from container_manager.worker.logevents import log_event
from container_manager.worker.tracking import (
    Exited,
    HostBack,
    HostDown,
    Launched,
    LaunchRefused,
    Report,
    Tracked,
    UsageSampled,
    Vanished,
)
from container_manager_core.errors import PolicyViolationError
from container_manager_core.plugins import PluginManager
from container_manager_core.secrets import scrub
from container_manager_core.types import JobSpec, Violation


@dataclass(frozen=True)
class Next:
    """What the loop does with a job once an event was recorded."""

    follow: bool = True  # Keep following it; everything below applies only when this is False.
    saved: bool = False  # Its ending was written by this worker: its slot is free.
    finished: bool = False  # ...and it reached a finished status (not retrying).
    why: str = ""  # Why an unsaved job is dropped (another writer moved it).
    remove: bool = False  # Remove its container (its results are saved).
    stop: bool = False  # Stop, then remove its container: nobody will ever want it.
    check_health: bool = False  # Check the hosts' health now.


FOLLOW = Next()
MOVED_ON = Next(follow=False, why="the job moved on before its result was saved")


def describe(exc: BaseException) -> str:
    """Say what went wrong in one line: the exception's type and message, any credential it quotes masked."""
    return f"{type(exc).__name__}: {scrub(str(exc).strip() or repr(exc))}"


def spec_or_error(job: ContainerJob) -> tuple[JobSpec | None, str]:
    """Return the job's spec, or None and why its row cannot become one.

    Any error of the row's own data counts (a JSON list where an object belongs, a network entry
    without its name, a command that does not decode); an error of the database is raised.
    """
    try:
        return job.to_spec(), ""
    except DatabaseError:
        raise
    except Exception as exc:  # Whatever the row holds, it must not stop the worker.
        return None, f"The job cannot be turned into a spec: {describe(exc)}"


def fail_launch(
    job: ContainerJob, owner: Owner, host_name: str, reason: TerminationReason, error: str
) -> bool:
    """Log and record a launch that cannot happen; False if a cancel or a takeover moved the job first."""
    log_event("launch_failed", job=job.pk, host=host_name, reason=reason, error=error, level=logging.WARNING)
    try:
        job.fail_launch(owner, reason, error)
    except InvalidStateTransition:
        return False
    return True


class Recorder:
    """Record one worker's events on its jobs; every write is guarded by the job's ``Owner``."""

    def __init__(self, *, worker_id: str, settings: AppSettings, manager: PluginManager) -> None:
        self.worker_id = worker_id
        self.settings = settings
        self.manager = manager

    def owner(self, tracked: Tracked) -> Owner:
        return Owner(self.worker_id, tracked.attempt)

    def claimed(self, tracked: Tracked, *, refusal: Violation | None = None) -> Next:
        """Prepare a freshly claimed job for launch: FOLLOW, or the job failed (invalid_spec, policy).

        ``refusal``: the claim found that no host could ever hold the job (``no_host_fits``).
        """
        tracked.spec, error = spec_or_error(tracked.job)
        if tracked.spec is None:
            return self._fail_launch(tracked, TerminationReason.INVALID_SPEC, error)
        # The row may have been changed behind create_job's back, and the settings since: check
        # again here, before anything is sent to the engine.
        spec, host = tracked.spec, tracked.host
        violations = [refusal] if refusal is not None else []
        violations += tracked.job.launch_violations(spec, host, self.settings, self.manager)
        if violations:
            log_policy_rejection(spec, violations, host=host, source="launch")
            return self._fail_launch(
                tracked, TerminationReason.LAUNCH_FAILED, str(PolicyViolationError(violations))
            )
        return FOLLOW

    def apply(self, report: Report) -> Next:
        """Record ``report`` with the one event method it stands for."""
        tracked = report.tracked
        match report:
            case Launched():
                return self._running(tracked, report)
            case LaunchRefused():
                return self._fail_launch(tracked, report.reason, report.error)
            case HostDown():
                hosts.mark_unreachable(tracked.host_pk, report.error)
                if report.during_launch:
                    return self._release(tracked, report.error)
                tracked.job.append_event(f"Host {tracked.host.name} unreachable: {report.error}")
                return FOLLOW
            case HostBack():
                return Next(check_health=True)
            case Exited():
                result = outcome.harvest_fields(report.status, report.logs, report.usage)
                result["stop_reason"] = tracked.stop_reason
                reason = outcome.termination_reason(report.status, tracked.stop_reason)
                step = self._exit(
                    tracked, reason, result=result, error=report.error, interrupted=tracked.interrupted
                )
                self._finish_attempt(tracked, step, reason, report.error, report)
                return step
            case Vanished():
                error = "The container vanished before it was harvested."
                step = self._exit(tracked, TerminationReason.HOST_LOST, error=error)
                self._finish_attempt(tracked, step, TerminationReason.HOST_LOST, error, None)
                return step
            case UsageSampled():
                logstore.store_usage_sample(tracked, report.usage, report.seconds)
                return FOLLOW

    def _finish_attempt(
        self, tracked: Tracked, step: Next, reason: TerminationReason, error: str, exited: Exited | None
    ) -> None:
        # The reason the job's row settled on (a retry, an interruption) when this worker saved it.
        settled = tracked.job.termination_reason if step.saved else reason
        logstore.finish_attempt(
            tracked,
            status=exited.status if exited else None,
            usage=exited.usage if exited else None,
            harvest_seconds=exited.harvest_seconds if exited else None,
            reason=settled or reason,
            error=error,
        )

    def _running(self, tracked: Tracked, report: Launched) -> Next:
        job = tracked.job
        try:
            job.mark_running(self.owner(tracked), execution_id=report.execution_id)
        except InvalidStateTransition:
            status = ContainerJob.objects.filter(pk=tracked.pk).values_list("status", flat=True).first()
            # Cancelled meanwhile: nobody will ever want this container.
            return Next(
                follow=False, why="the job moved on while it was launching", stop=status in FINISHED_STATUSES
            )
        except ROW_DATA_ERRORS as exc:
            error = f"The launched container could not be recorded: {describe(exc)}"
            ended = self._fail_launch(tracked, TerminationReason.RESULT_UNSTORABLE, error)
            return Next(follow=False, saved=ended.saved, finished=ended.finished, why=ended.why, stop=True)
        logstore.open_attempt(tracked, worker_id=self.worker_id, adopted=report.adopted)
        log_event(
            "running",
            job=job.pk,
            execution=report.execution_id,
            host=tracked.host.name,
            adopted=report.adopted,
        )
        return FOLLOW

    def _release(self, tracked: Tracked, error: str) -> Next:
        # The engine could not be reached: not the job's fault, so no retry is used up.
        try:
            tracked.job.release(self.owner(tracked), error, unpin=not tracked.pinned)
            log_event("released", job=tracked.pk, host=tracked.host.name, error=error)
        except InvalidStateTransition:
            pass  # A cancel or another worker's takeover moved the job first: nothing left to release.
        return Next(follow=False, why="released")

    def _fail_launch(self, tracked: Tracked, reason: TerminationReason, error: str) -> Next:
        if not fail_launch(tracked.job, self.owner(tracked), tracked.host.name, reason, error):
            return MOVED_ON
        return self._ended(tracked, JobStatus.FAILED)

    def _exit(
        self,
        tracked: Tracked,
        reason: TerminationReason,
        *,
        result: dict[str, Any] | None = None,
        error: str = "",
        interrupted: bool = False,
    ) -> Next:
        try:
            status = tracked.job.record_exit(
                self.owner(tracked),
                reason,
                result=result,
                error=error,
                interrupted=interrupted,
                settings=self.settings,
            )
        except InvalidStateTransition:
            return MOVED_ON
        return self._ended(tracked, status)

    def _ended(self, tracked: Tracked, status: JobStatus) -> Next:
        finished = status in FINISHED_STATUSES
        log_event(
            "finished" if finished else "retrying",
            job=tracked.pk,
            execution=tracked.execution_id,
            host=tracked.host.name,
            status=status,
            reason=tracked.job.termination_reason,
            exit_code=tracked.job.exit_code,
        )
        remove = bool(tracked.execution_id) and self.settings.CLEANUP_AFTER_HARVEST
        return Next(follow=False, saved=True, finished=finished, remove=remove)
