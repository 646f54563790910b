"""Container names and labels that tie an engine container to a job and to this manager."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from container_manager_core.labels import HOST_LABEL, JOB_ID_LABEL, MANAGED_LABEL, OWNER_LABEL
from container_manager_core.types import HostSpec, JobSpec

NAME_PREFIX = "cm-job-"
# Docker's own rule for container names; anything else is refused by the engine.
_VALID_NAME = re.compile(r"^[a-zA-Z0-9_.-]+$")
_INVALID_CHARS = re.compile(r"[^a-zA-Z0-9_.-]")
_MAX_ID_CHARS = 120


def container_name(job_id: str) -> str:
    """Return the deterministic container name for ``job_id``.

    The name is what makes a second launch of the same job collide (409) instead of starting a twin,
    so it must be a pure function of the job id. Ids Docker cannot use verbatim are sanitised and
    suffixed with a hash of the original, so two different ids never share a name.
    """
    if _VALID_NAME.match(job_id) and len(job_id) <= _MAX_ID_CHARS:
        return NAME_PREFIX + job_id
    digest = hashlib.sha256(job_id.encode("utf-8")).hexdigest()[:16]
    readable = _INVALID_CHARS.sub("_", job_id)[:_MAX_ID_CHARS]
    return f"{NAME_PREFIX}{readable}-{digest}"


def container_labels(host: HostSpec, job: JobSpec) -> dict[str, str]:
    """Return the job's labels plus the manager's own, which a job cannot override."""
    labels = dict(job.labels)
    labels.update(manager_labels(host, job.job_id))
    return labels


def manager_labels(host: HostSpec, job_id: str) -> dict[str, str]:
    """Return the labels by which this manager recognises its containers."""
    return {MANAGED_LABEL: "true", OWNER_LABEL: host.owner, JOB_ID_LABEL: job_id, HOST_LABEL: host.name}


def owner_filter(host: HostSpec) -> list[str]:
    """Return the engine's label filter that selects only this owner's managed containers."""
    return [f"{MANAGED_LABEL}=true", f"{OWNER_LABEL}={host.owner}"]


def job_id_of(labels: Mapping[str, str] | None, owner: str) -> str | None:
    """Return the job id a managed container of ``owner`` carries, or None for anyone else's."""
    if not labels or labels.get(MANAGED_LABEL) != "true" or labels.get(OWNER_LABEL) != owner:
        return None
    return labels.get(JOB_ID_LABEL)
