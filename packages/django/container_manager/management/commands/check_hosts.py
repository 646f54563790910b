"""``manage.py check_hosts``: health-check every active host, record the result, fail if any is unhealthy."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from container_manager.health import check_host
from container_manager.worker.hosts import active_hosts


class Command(BaseCommand):
    help = "Check the health of every active executor host and update its health fields."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host",
            action="append",
            dest="hosts",
            default=[],
            metavar="NAME",
            help="Check only this host (repeatable).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        hosts = list(active_hosts(options["hosts"]))
        if not hosts:
            raise CommandError("No active executor hosts to check.")
        unhealthy = []
        for host in hosts:
            status = check_host(host)
            if status.healthy:
                version = f" engine {status.engine_version}" if status.engine_version else ""
                self.stdout.write(f"{host.name}: healthy in {status.response_time:.3f}s{version}")
            else:
                unhealthy.append(host.name)
                self.stdout.write(f"{host.name}: UNHEALTHY in {status.response_time:.3f}s: {status.error}")
        if unhealthy:
            raise CommandError(
                f"{len(unhealthy)} of {len(hosts)} host(s) unhealthy: {', '.join(unhealthy)}.", returncode=1
            )
