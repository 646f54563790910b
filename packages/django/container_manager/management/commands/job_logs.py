"""``manage.py job_logs <id> [--follow]``: print a job's output; with --follow, as it comes, until the job ends."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser, OutputWrapper

from container_manager.console import reading
from container_manager.management.argtypes import positive
from container_manager.management.jobarg import job_by_id
from container_manager.models import ContainerJob


class Command(BaseCommand):
    help = (
        "Print a job's stdout (on stdout) and stderr (on stderr), timestamped as stored. With "
        "--follow, keep printing what the job prints, like tail -f, and exit when the job has ended."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job_id", help="The job's id (a UUID).")
        parser.add_argument(
            "--follow",
            action="store_true",
            help="Print new output as it comes; exit when the job ends.",
        )
        parser.add_argument(
            "--interval",
            type=positive(float),
            default=1.0,
            help="With --follow, seconds between two reads (default 1).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        job = job_by_id(options["job_id"])
        self._lost: set[reading.Stream] = set()
        offsets = self._print(job, {})
        if not options["follow"]:
            return
        while not job.is_finished:
            time.sleep(options["interval"])
            job.refresh_from_db()
            offsets = self._print(job, offsets)
        reason = f", {job.get_termination_reason_display()}" if job.termination_reason else ""
        code = "" if job.exit_code is None else f", exit code {job.exit_code}"
        self.stderr.write(f"==> {job}: {job.get_status_display().lower()}{reason}{code}")

    def _print(self, job: ContainerJob, offsets: dict[reading.Stream, int]) -> dict[reading.Stream, int]:
        """Print each stream's new text; return the offsets to read from next."""
        logs = reading.log_since(job, offsets, limit=None)
        outputs: dict[reading.Stream, OutputWrapper] = {"stdout": self.stdout, "stderr": self.stderr}
        for stream, piece in logs.streams.items():
            if stream in self._lost:
                continue
            if piece.reset and offsets:
                # Past the log cap the kept tail moves, so what is new cannot be told apart.
                self._lost.add(stream)
                self.stderr.write(
                    f"==> {stream} passed the log cap ({piece.dropped_bytes} bytes cut so far) or was "
                    f"replaced: no longer followed; run job_logs again once the job has ended."
                )
                continue
            if piece.text:
                outputs[stream].write(piece.text, ending="")
                outputs[stream].flush()
        return {stream: piece.offset for stream, piece in logs.streams.items()}
