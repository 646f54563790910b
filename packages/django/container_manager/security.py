"""Security events on the ``container_manager.security`` logger: what was refused, never the secrets."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from container_manager_core.secrets import scrub
from container_manager_core.types import HostSpec, JobSpec, Violation

logger = logging.getLogger("container_manager.security")


def log_policy_rejection(
    job: JobSpec, violations: Sequence[Violation], *, host: HostSpec | None = None, source: str
) -> None:
    """Log that ``job`` was refused by the policy, naming the rule codes but no values.

    Messages are left out on purpose: they quote the offending values, and the environment and
    command may carry secrets. The codes and fields say which rules broke; the job id finds the rest.
    """
    logger.warning(
        "Policy rejected job id=%s name=%r image=%r host=%r source=%s codes=%s fields=%s",
        job.job_id,
        scrub(job.name),
        scrub(job.image),
        host.name if host is not None else None,
        source,
        ",".join(v.code for v in violations),
        ",".join(sorted({v.field for v in violations if v.field})),
        extra={"violation_codes": [v.code for v in violations], "job_id": job.job_id},
    )


def log_host_rejection(host: HostSpec, violations: Sequence[Violation], *, source: str) -> None:
    """Log that a host configuration was refused by the policy, naming the rule codes."""
    logger.warning(
        "Policy rejected host name=%r executor_type=%s source=%s codes=%s",
        host.name,
        host.executor_type,
        source,
        ",".join(v.code for v in violations),
        extra={"violation_codes": [v.code for v in violations]},
    )
