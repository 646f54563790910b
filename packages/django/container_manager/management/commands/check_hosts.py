"""``manage.py check_hosts``: health-check every active host, record the result, fail if any is unhealthy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from container_manager.health import check_host
from container_manager.models import ExecutorHost
from container_manager.worker.hosts import active_hosts, host_name_errors


class Command(BaseCommand):
    help = "Check the health of every active executor host and update its health fields."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host",
            action="append",
            dest="hosts",
            default=[],
            metavar="NAME",
            help="Check only this host, even an inactive one (repeatable).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        hosts = _hosts_to_check(options["hosts"])
        unhealthy = []
        for host in hosts:
            status = check_host(host)
            # A host is checked by name before it is activated: say so, or "healthy" reads as "serving".
            name = host.name if host.is_active else f"{host.name} (inactive)"
            if status.healthy:
                version = f" engine {status.engine_version}" if status.engine_version else ""
                self.stdout.write(f"{name}: healthy in {status.response_time:.3f}s{version}")
            else:
                unhealthy.append(host.name)
                self.stdout.write(f"{name}: UNHEALTHY in {status.response_time:.3f}s: {status.error}")
        if unhealthy:
            raise CommandError(
                f"{len(unhealthy)} of {len(hosts)} host(s) unhealthy: {', '.join(unhealthy)}.", returncode=1
            )


def _hosts_to_check(names: Sequence[str]) -> list[ExecutorHost]:
    """Return the named hosts (active or not), or every active host; fail on a name no host has."""
    if errors := host_name_errors(names, inactive_ok=True):
        raise CommandError(" ".join(errors))
    if names:
        return list(ExecutorHost.objects.filter(name__in=names).order_by("name"))
    hosts = list(active_hosts(names))
    if not hosts:
        raise CommandError("No active executor hosts to check.")
    return hosts
