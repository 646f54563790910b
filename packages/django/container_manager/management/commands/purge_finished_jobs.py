"""``manage.py purge_finished_jobs``: delete finished jobs, logs and all, past the retention period."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from container_manager.management.argtypes import positive
from container_manager.retention import (
    DEFAULT_BATCH_SIZE,
    Purged,
    count_expired,
    purge_expired,
    purge_workers,
    retention_cutoff,
)


class Command(BaseCommand):
    help = (
        "Delete finished jobs (completed, failed, timed out, cancelled), with their logs, that "
        "completed more than FINISHED_JOB_RETENTION_DAYS ago, and the records of workers gone that long. Small batches, each a short "
        "transaction: safe to run from cron while workers run. Queued and running jobs are never touched."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--older-than-days",
            type=positive(float),
            help="Delete jobs finished more than this many days ago (default: FINISHED_JOB_RETENTION_DAYS).",
        )
        parser.add_argument(
            "--batch-size",
            type=positive(int),
            default=DEFAULT_BATCH_SIZE,
            help=f"Jobs deleted per transaction (default {DEFAULT_BATCH_SIZE}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        cutoff = retention_cutoff(options["older_than_days"])
        if cutoff is None:
            raise CommandError(
                "FINISHED_JOB_RETENTION_DAYS is None, which keeps finished jobs for ever: "
                "set it, or pass --older-than-days, to purge."
            )
        if options["dry_run"]:
            self._report(count_expired(cutoff), "would be deleted")
            self._report_workers(purge_workers(cutoff, dry_run=True), cutoff, "would be deleted")
            return
        purged = purge_expired(
            cutoff,
            batch_size=options["batch_size"],
            on_batch=lambda p: (
                self.stdout.write(f"batch {p.batches}: {p.total} deleted so far")
                if options["verbosity"] > 1
                else None
            ),
        )
        self._report(purged, f"deleted in {purged.batches} batch(es)")
        self._report_workers(purge_workers(cutoff), cutoff, "deleted")

    def _report_workers(self, count: int, cutoff: Any, verb: str) -> None:
        if count:  # Said only when there is something: most runs find no worker gone that long.
            self.stdout.write(
                f"{count} record(s) of workers gone since before {cutoff.isoformat(timespec='seconds')} {verb}."
            )

    def _report(self, purged: Purged, verb: str) -> None:
        statuses = ", ".join(f"{status} {n}" for status, n in sorted(purged.by_status.items()))
        self.stdout.write(
            f"{purged.total} finished job(s) completed before {purged.cutoff.isoformat(timespec='seconds')} "
            f"{verb}" + (f" ({statuses})." if statuses else ".")
        )
