"""The job a command is given by id: found, or a clear error naming the id."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from container_manager.models import ContainerJob


def job_by_id(job_id: str) -> ContainerJob:
    """Return the job with id ``job_id``; raise CommandError if the id is malformed or unknown."""
    try:
        job = ContainerJob.objects.select_related("docker_host").filter(pk=job_id).first()
    except ValidationError:
        raise CommandError(f"{job_id!r} is not a job id: a job id is a UUID.") from None
    if job is None:
        raise CommandError(f"No job with id {job_id!r}.")
    return job
