"""The job state machine as data: statuses, allowed transitions, termination reasons."""

from __future__ import annotations

import enum
from typing import Final

from django.db import models
from django.utils.translation import gettext_lazy as _


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


class CancelOutcome(enum.StrEnum):
    """What ``ContainerJob.request_cancel()`` did."""

    CANCELLED = "cancelled"  # the job had not been launched: it is CANCELLED now
    REQUESTED = "requested"  # the job is launching or running: the worker will stop it


S = JobStatus

# Every status change goes through ContainerJob._transition, which only moves a row whose current
# status is one of the sources listed here for the target.
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
