"""``manage.py cancel_job <id>``: cancel a queued job, or ask the worker to stop a running one."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from container_manager import jobactions
from container_manager.management.jobarg import job_by_id
from container_manager.states import CancelOutcome


class Command(BaseCommand):
    help = (
        "Cancel a job: a queued one at once; for a launching or running one, ask its worker to stop "
        "the container (it does within a second or so). Fails for a finished job."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job_id", help="The job's id (a UUID).")

    def handle(self, *args: Any, **options: Any) -> None:
        job = job_by_id(options["job_id"])
        try:
            outcome = jobactions.cancel(job)
        except jobactions.ActionRefused as refused:
            raise CommandError(refused.message) from None
        if outcome == CancelOutcome.CANCELLED:
            self.stdout.write(f"{job}: cancelled before launch.")
        else:
            self.stdout.write(f"{job}: asked the worker to stop it.")
