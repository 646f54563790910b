"""Cancel and retry as a person asks for them: the admin's list actions, its job page, and the commands.

Each calls the job's own event method (``request_cancel``, ``requeue``) and turns what happened into
the sentences every entry point shows, so the list, the page and the terminal say the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib import messages
from django.core.exceptions import ValidationError

from container_manager.exceptions import InvalidStateTransition
from container_manager.models import ContainerJob
from container_manager.states import CancelOutcome


class ActionRefused(Exception):
    """The job cannot be cancelled or retried as it is; the message says why, naming the job."""

    def __init__(self, message: str, *, level: int = messages.WARNING) -> None:
        super().__init__(message)
        self.message = message
        self.level = level


@dataclass(frozen=True)
class Report:
    """One message for the person who asked: a django.contrib.messages level and its text."""

    level: int
    text: str


def cancel(job: ContainerJob) -> CancelOutcome:
    """Cancel a queued job, or ask the worker to stop a running one; refuse a finished job."""
    try:
        return job.request_cancel()
    except InvalidStateTransition:
        raise ActionRefused(f"{job}: already {job.get_status_display().lower()}.") from None


def retry(job: ContainerJob) -> None:
    """Put a finished job back in the queue; refuse one still queued or running, or whose host is down."""
    try:
        job.requeue()
    except InvalidStateTransition:
        raise ActionRefused(f"{job}: only a finished job can be retried.") from None
    except ValidationError as exc:
        raise ActionRefused(f"{job}: {' '.join(exc.messages)}", level=messages.ERROR) from None


def cancel_all(jobs: Iterable[ContainerJob]) -> list[Report]:
    """Cancel each job; return what to tell: one refusal per job, then the counts of what was done."""
    reports: list[Report] = []
    outcomes = {CancelOutcome.CANCELLED: 0, CancelOutcome.REQUESTED: 0}
    for job in jobs:
        try:
            outcomes[cancel(job)] += 1
        except ActionRefused as refused:
            reports.append(Report(refused.level, refused.message))
    if outcomes[CancelOutcome.CANCELLED]:
        reports.append(
            Report(messages.SUCCESS, f"Cancelled {outcomes[CancelOutcome.CANCELLED]} queued job(s).")
        )
    if outcomes[CancelOutcome.REQUESTED]:
        reports.append(
            Report(
                messages.SUCCESS,
                f"Asked the worker to stop {outcomes[CancelOutcome.REQUESTED]} running job(s).",
            )
        )
    return reports


def retry_all(jobs: Iterable[ContainerJob]) -> list[Report]:
    """Re-queue each job; return what to tell: one refusal per job, then how many were re-queued."""
    reports: list[Report] = []
    done = 0
    for job in jobs:
        try:
            retry(job)
        except ActionRefused as refused:
            reports.append(Report(refused.level, refused.message))
        else:
            done += 1
    if done:
        reports.append(Report(messages.SUCCESS, f"Re-queued {done} job(s)."))
    return reports
