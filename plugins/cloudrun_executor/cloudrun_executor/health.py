"""Check that a Cloud Run host can run jobs now: configuration, credentials, reachability, permissions.

Two cheap reads prove what launching and reading logs need: listing one job in the host's region
(Cloud Run Admin API) and one ``cloud_run_job`` log entry (Cloud Logging). Both share one deadline,
``health_timeout_seconds`` in all, so a slow API cannot hold the probe for twice that. Nothing here
raises.
"""

from __future__ import annotations

import time

import google.auth.exceptions
from google.api_core import exceptions as api_exceptions
from google.cloud import run_v2
from google.cloud.logging_v2.types import ListLogEntriesRequest

from cloudrun_executor.clients import ClientCache
from cloudrun_executor.config import config_violations, load_config
from cloudrun_executor.errors import GOOGLE_ERRORS, TRANSIENT, describe
from container_manager_core.types import HealthStatus, HostSpec

API_VERSION = "Cloud Run Admin API v2"


def check_health(host: HostSpec, clients: ClientCache) -> HealthStatus:
    """Return whether ``host`` can run jobs now, with the reason when it cannot."""
    started = time.monotonic()

    def result(error: str | None, **details: object) -> HealthStatus:
        return HealthStatus(
            healthy=error is None,
            response_time=time.monotonic() - started,
            error=error,
            engine_version=API_VERSION if error is None else None,
            details=details,
        )

    problems = list(config_violations(host))
    if problems:
        return result(" ".join(v.message for v in problems))
    config = load_config(host)
    where = {"project": config.project, "region": config.region, "endpoint": config.api_endpoint or "default"}
    deadline = started + config.health_timeout_seconds

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise api_exceptions.DeadlineExceeded(  # type: ignore[no-untyped-call]
                f"no answer within {config.health_timeout_seconds} s"
            )
        return left

    try:
        session = clients.get(config)
        session.jobs.list_jobs(
            request=run_v2.ListJobsRequest(parent=config.location, page_size=1),
            retry=None,
            timeout=remaining(),
        )
    except google.auth.exceptions.DefaultCredentialsError as exc:
        return result(
            f"No Google credentials were found for Cloud Run host {host.name!r} ({exc}). Set "
            "GOOGLE_APPLICATION_CREDENTIALS, run on Google Cloud with a service account, or use "
            "'gcloud auth application-default login'.",
            **where,
        )
    except GOOGLE_ERRORS as exc:
        return result(
            _explain(exc, f"list Cloud Run jobs in {config.location!r}", "roles/run.developer"), **where
        )
    try:
        session.logging.list_log_entries(
            request=ListLogEntriesRequest(
                resource_names=[f"projects/{config.project}"],
                filter='resource.type="cloud_run_job"',
                page_size=1,
            ),
            retry=None,
            timeout=remaining(),
        )
    except GOOGLE_ERRORS as exc:
        return result(
            _explain(exc, f"read Cloud Run job logs in project {config.project!r}", "roles/logging.viewer"),
            **where,
        )
    return result(None, **where)


def _explain(exc: BaseException, what: str, role: str) -> str:
    if isinstance(exc, api_exceptions.PermissionDenied | api_exceptions.Unauthenticated):
        return (
            f"The credentials may not {what} ({describe(exc)}); grant {role} to the identity this host uses."
        )
    if isinstance(exc, TRANSIENT):
        return f"Could not {what}: the API is unreachable or did not answer in time ({describe(exc)})."
    return f"Could not {what}: {describe(exc)}."
