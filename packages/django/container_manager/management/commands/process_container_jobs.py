"""``manage.py process_container_jobs``: run the worker (the flags only configure ``Worker.run()``)."""

from __future__ import annotations

import gc
import logging
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from container_manager.management.argtypes import positive
from container_manager.management.console_logging import console_logging
from container_manager.worker.hosts import host_name_errors
from container_manager.worker.logevents import log_event
from container_manager.worker.outage import when_reachable
from container_manager.worker.worker import DB_RETRY_MAX_SECONDS, Worker


class Command(BaseCommand):
    help = "Claim queued container jobs, run them on their hosts, and record every result."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="Run what is claimable now to completion, then exit."
        )
        parser.add_argument("--max-jobs", type=positive(int), help="Exit after claiming this many jobs.")
        parser.add_argument(
            "--concurrency", type=positive(int), default=4, help="Jobs this worker runs at once (default 4)."
        )
        parser.add_argument(
            "--host",
            action="append",
            dest="hosts",
            default=[],
            metavar="NAME",
            help="Serve only this executor host (repeatable; default: every active host).",
        )
        parser.add_argument(
            "--poll-interval",
            type=positive(float),
            help="Seconds between queue polls (default: POLL_INTERVAL).",
        )
        parser.add_argument(
            "--worker-id", help="A stable id; a restarted worker with the same id recovers at once."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        with console_logging(options["verbosity"]):
            # A misspelt --host would otherwise leave a worker running that serves nothing, silently.
            # A database down at start is waited for, as the loop waits out an outage.
            if errors := when_reachable(lambda: host_name_errors(options["hosts"]), cap=DB_RETRY_MAX_SECONDS):
                raise CommandError(" ".join(errors))
            worker = Worker(
                worker_id=options["worker_id"],
                concurrency=options["concurrency"],
                max_jobs=options["max_jobs"],
                once=options["once"],
                host_names=options["hosts"],
                poll_interval=options["poll_interval"],
            )
            _log_settings(worker)
            # A long-lived process: take what start-up built (Django, the plugins, their modules)
            # out of the collector's reach, so a full collection scans only what the worker makes
            # later. Under the benchmark's load a full collection paused the worker for 50-130 ms.
            gc.freeze()
            worker.run()


def _log_settings(worker: Worker) -> None:
    """Say at DEBUG (``-v 2``) which cadences and limits this worker runs with."""
    settings = worker.settings
    log_event(
        "worker_settings",
        worker=worker.worker_id,
        poll_interval=worker.poll_interval,
        lease_seconds=settings.LEASE_SECONDS,
        health_check_interval=settings.HEALTH_CHECK_INTERVAL,
        reconcile_interval=settings.RECONCILE_INTERVAL,
        shutdown_grace_seconds=settings.SHUTDOWN_GRACE_SECONDS,
        default_executor_type=settings.DEFAULT_EXECUTOR_TYPE,
        level=logging.DEBUG,
    )
