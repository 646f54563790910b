"""Turn Google API and auth exceptions into the core's typed errors, so callers never import google."""

from __future__ import annotations

import google.auth.exceptions
from google.api_core import exceptions as api_exceptions

from container_manager_core.errors import ExecutorError, ExecutorUnavailable, LaunchFailed

# Worth retrying later: the API did not answer, was overloaded, or failed on its side.
TRANSIENT = (
    api_exceptions.ServiceUnavailable,
    api_exceptions.DeadlineExceeded,
    api_exceptions.TooManyRequests,
    api_exceptions.InternalServerError,
    api_exceptions.Aborted,
    api_exceptions.RetryError,
    google.auth.exceptions.TransportError,
)
# Everything a Google client call can raise that this plugin turns into a core error.
GOOGLE_ERRORS = (api_exceptions.GoogleAPIError, google.auth.exceptions.GoogleAuthError)


class LogReadFailed(ExecutorError):
    """Cloud Logging refused to give an execution's output (throttled past the wait, or forbidden).

    It is this job's harvest that failed, not the host: Cloud Run itself may be fine.
    """


def describe(exc: BaseException) -> str:
    """Return a one-line account of a Google exception: its status and the server's message."""
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        status = exc.grpc_status_code.name if exc.grpc_status_code is not None else exc.code
        return f"{status}: {str(exc.message).rstrip('.')}"
    return f"{type(exc).__name__}: {str(exc).rstrip('.')}"


def wrap(exc: BaseException, what: str, *, launching: bool = False) -> ExecutorError:
    """Return the core error for ``exc``, raised while trying to ``what`` (a verb phrase)."""
    if isinstance(exc, TRANSIENT):
        return ExecutorUnavailable(
            f"Could not {what}: the Google API did not answer in time or is unavailable ({describe(exc)})."
        )
    if launching:
        return LaunchFailed(f"Could not {what}: {describe(exc)}.")
    return ExecutorError(f"Could not {what}: {describe(exc)}.")
