"""The job state machine as data: statuses, allowed transitions, termination reasons."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from django.db import models
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from container_manager.conf import AppSettings


class JobStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    LAUNCHING = "launching", _("Launching")
    RUNNING = "running", _("Running")
    RETRYING = "retrying", _("Retrying")
    COMPLETED = "completed", _("Completed")
    FAILED = "failed", _("Failed")
    TIMEOUT = "timeout", _("Timed out")
    CANCELLED = "cancelled", _("Cancelled")


class TerminationReason(models.TextChoices):
    COMPLETED = "completed", _("Completed")
    NON_ZERO_EXIT = "non_zero_exit", _("Non-zero exit")
    OOM_KILLED = "oom_killed", _("OOM-killed")
    TIMEOUT = "timeout", _("Timeout")
    CANCELLED = "cancelled", _("Cancelled")
    LAUNCH_FAILED = "launch_failed", _("Launch failed")
    IMAGE_PULL_FAILED = "image_pull_failed", _("Image pull failed")
    HOST_LOST = "host_lost", _("Host lost")
    # Faults of one job's own data: that job fails, the worker and the other jobs go on.
    INVALID_SPEC = "invalid_spec", _("Invalid spec")
    RESULT_UNSTORABLE = "result_unstorable", _("Result unstorable")


class CancelOutcome(enum.StrEnum):
    """What ``ContainerJob.request_cancel()`` did."""

    CANCELLED = "cancelled"  # the job had not been launched: it is CANCELLED now
    REQUESTED = "requested"  # the job is launching or running: the worker will stop it


S = JobStatus

# Every status change is one of ContainerJob's event methods (mark_launching, mark_running,
# record_exit, fail_launch, release, request_cancel, requeue); each writes through one guarded
# UPDATE that only moves a row whose current status is one of the sources listed here for the target.
TRANSITIONS: Final[dict[JobStatus, frozenset[JobStatus]]] = {
    S.PENDING: frozenset({S.LAUNCHING, S.CANCELLED}),
    S.RETRYING: frozenset({S.LAUNCHING, S.CANCELLED}),
    # LAUNCHING -> PENDING: the host was unreachable; the claim is released, no retry is used up.
    S.LAUNCHING: frozenset({S.RUNNING, S.FAILED, S.RETRYING, S.PENDING, S.CANCELLED, S.TIMEOUT}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.TIMEOUT, S.CANCELLED, S.RETRYING}),
    # A person may re-queue a finished job (admin "retry"); the worker never does.
    S.COMPLETED: frozenset({S.PENDING}),
    S.FAILED: frozenset({S.PENDING}),
    S.TIMEOUT: frozenset({S.PENDING}),
    S.CANCELLED: frozenset({S.PENDING}),
}

ACTIVE_STATUSES: Final = frozenset({S.LAUNCHING, S.RUNNING})
CLAIMABLE_STATUSES: Final = frozenset({S.PENDING, S.RETRYING})
FINISHED_STATUSES: Final = frozenset({S.COMPLETED, S.FAILED, S.TIMEOUT, S.CANCELLED})


def sources_of(target: JobStatus) -> frozenset[JobStatus]:
    """Return the statuses a job may move to ``target`` from."""
    return frozenset(source for source, targets in TRANSITIONS.items() if target in targets)


def can_transition(source: str, target: str) -> bool:
    """Say whether the table allows ``source`` -> ``target``."""
    return JobStatus(target) in TRANSITIONS.get(JobStatus(source), frozenset())


# Where an ending leads ---------------------------------------------------------------------------

# Failures a job's max_retries may retry; policy violations, launch failures and faults of the
# job's own data are never retried.
RETRYABLE: Final = frozenset(
    {
        TerminationReason.NON_ZERO_EXIT,
        TerminationReason.OOM_KILLED,
        TerminationReason.TIMEOUT,
        TerminationReason.HOST_LOST,
    }
)
# An engine that keeps restarting under a job eventually fails it rather than looping for ever.
MAX_INTERRUPTIONS: Final = 5
# Pause before re-running an interrupted job: an engine stopping its containers is still shutting
# down, and answers a create or start in that window with errors that are not the job's.
INTERRUPTED_RERUN_SECONDS: Final = 5.0
_FINAL_STATUS: Final = {
    TerminationReason.COMPLETED: JobStatus.COMPLETED,
    TerminationReason.CANCELLED: JobStatus.CANCELLED,
    TerminationReason.TIMEOUT: JobStatus.TIMEOUT,
}


def backoff_seconds(retry_count: int, settings: AppSettings) -> float:
    """Return the pause before retry number ``retry_count + 1``: base * 2**retry_count, capped."""
    return float(
        min(settings.RETRY_BACKOFF_MAX_SECONDS, settings.RETRY_BACKOFF_BASE_SECONDS * 2**retry_count)
    )


def settle(
    reason: TerminationReason,
    *,
    interrupted: bool,
    retry_count: int,
    max_retries: int,
    interruption_count: int,
    settings: AppSettings,
    now: datetime,
) -> tuple[JobStatus, TerminationReason, dict[str, Any]]:
    """Return the status an ending leads to, the reason to record, and the bookkeeping fields."""
    if interrupted and reason not in (
        TerminationReason.COMPLETED,
        TerminationReason.CANCELLED,
        TerminationReason.TIMEOUT,
    ):
        # The engine went away under the job (a restart kills its containers): not the job's failure.
        reason = TerminationReason.HOST_LOST
        if interruption_count < MAX_INTERRUPTIONS:
            # Run it again shortly, without using up one of the job's retries.
            bookkeeping = {
                "interruption_count": interruption_count + 1,
                "next_attempt_at": now + timedelta(seconds=INTERRUPTED_RERUN_SECONDS),
            }
            return JobStatus.RETRYING, reason, bookkeeping
    if reason in RETRYABLE and retry_count < max_retries:
        delay = timedelta(seconds=backoff_seconds(retry_count, settings))
        return JobStatus.RETRYING, reason, {"retry_count": retry_count + 1, "next_attempt_at": now + delay}
    return _FINAL_STATUS.get(reason, JobStatus.FAILED), reason, {"completed_at": now}
