"""``manage.py purge_job_logs``: delete stored log chunks of attempts harvested longer ago than the retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from container_manager.attempts import purge_logs
from container_manager.conf import app_settings


class Command(BaseCommand):
    help = (
        "Delete the stored logs (LogChunk rows and LOG_STORAGE files) of job attempts harvested more than "
        "LOG_RETENTION_DAYS days ago. The attempts and the jobs' own output fields stay."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", type=int, default=None, help="Override LOG_RETENTION_DAYS for this run."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"] if options["days"] is not None else app_settings().LOG_RETENTION_DAYS
        if days is None:
            self.stdout.write("LOG_RETENTION_DAYS is not set and --days was not given: nothing purged.")
            return
        if days < 1:
            raise CommandError(f"--days must be a whole number of at least 1, got {days!r}.")
        purged = purge_logs(timezone.now() - timedelta(days=days))
        self.stdout.write(f"Purged {purged} log chunks of attempts harvested more than {days} days ago.")
