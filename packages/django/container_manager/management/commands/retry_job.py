"""``manage.py retry_job <id>``: put a finished job back in the queue."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from container_manager import jobactions
from container_manager.management.jobarg import job_by_id


class Command(BaseCommand):
    help = (
        "Re-queue a finished job (completed, failed, timed out or cancelled), as the admin's Retry "
        "does. Fails for a job still queued or running, or whose host cannot take jobs now."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job_id", help="The job's id (a UUID).")

    def handle(self, *args: Any, **options: Any) -> None:
        job = job_by_id(options["job_id"])
        try:
            jobactions.retry(job)
        except jobactions.ActionRefused as refused:
            raise CommandError(refused.message) from None
        self.stdout.write(f"{job}: re-queued.")
