"""The child side of the two-process transition race; imports Django only after setup."""

from __future__ import annotations

import os
from typing import Any


def transition_in_child(database_name: str, job_pks: list[str], barrier: Any, results: Any) -> None:
    """Set Django up against the test database; for each job, wait for the other racer, then try to move it."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    # The parent's test run created its own database; aim this process at it before connecting.
    settings.DATABASES["default"]["NAME"] = database_name
    from django.utils import timezone

    from container_manager.models import ContainerJob

    try:
        for job_pk in job_pks:
            job = ContainerJob.objects.get(pk=job_pk)
            barrier.wait(timeout=30)
            now = timezone.now()
            won = ContainerJob.mark_launching(
                [job], host=job.docker_host, worker_id=f"pid-{os.getpid()}", lease_expires_at=now, now=now
            )
            results.put((job_pk, "won" if won else "lost", os.getpid()))
    except Exception as exc:
        results.put(("", "error", repr(exc)))
    finally:
        connection.close()
