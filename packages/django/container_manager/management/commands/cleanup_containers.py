"""``manage.py cleanup_containers``: remove labelled containers that no live job needs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from container_manager.executors.registry import get_plugin_manager
from container_manager.health import unusable_reason
from container_manager.worker.hosts import active_hosts
from container_manager.worker.reconcile import find_orphans, remove_orphans
from container_manager_core.errors import ExecutorError


class Command(BaseCommand):
    help = (
        "Remove this manager's containers (found by label, never any other) whose job is unknown, "
        "finished, or waiting to run again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="List what would be removed; remove nothing."
        )
        parser.add_argument(
            "--older-than-hours",
            type=float,
            default=0.0,
            help="Keep containers of jobs that finished less than this many hours ago (default 0).",
        )
        parser.add_argument(
            "--host",
            action="append",
            dest="hosts",
            default=[],
            metavar="NAME",
            help="Only this host (repeatable).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        manager = get_plugin_manager()
        cutoff = timezone.now() - timedelta(hours=options["older_than_hours"])
        total = 0
        for host in active_hosts(options["hosts"]):
            if reason := unusable_reason(host):
                self.stderr.write(f"{host.name}: cannot be used as it is configured: {reason}")
                continue
            try:
                listing = manager.list_executions(host.to_spec())
            except ExecutorError as exc:
                self.stderr.write(f"{host.name}: cannot list containers: {exc}")
                continue
            orphans = find_orphans(listing, finished_before=cutoff)
            for orphan in orphans:
                verb = "would remove" if options["dry_run"] else "removing"
                self.stdout.write(
                    f"{host.name}: {verb} {orphan.execution_id} (job {orphan.job_id}: {orphan.why})"
                )
            if not options["dry_run"]:
                try:
                    remove_orphans(manager, host, orphans)
                except ExecutorError as exc:  # The engine stopped answering: go on with the other hosts.
                    self.stderr.write(f"{host.name}: stopped removing containers: {exc}")
                    continue
            total += len(orphans)
        summary = "would be removed" if options["dry_run"] else "removed"
        self.stdout.write(f"{total} container(s) {summary}.")
