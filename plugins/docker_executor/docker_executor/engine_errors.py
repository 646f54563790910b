"""Translate docker-py, requests and socket failures into the core's typed errors."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import docker
import docker.errors
import requests.exceptions
import urllib3.exceptions

from container_manager_core.errors import ExecutorError, ExecutorUnavailable, HostMisconfigured
from container_manager_core.types import HostSpec

# Failures that mean "the engine did not answer": the call may succeed later. Streams read from
# the raw socket, so a stalled engine surfaces as a socket timeout (OSError), not a requests error.
UNREACHABLE: tuple[type[BaseException], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
    OSError,
)


# The engine's answer to a request in an API version it does not speak ("client version 1.24 is too
# old. Minimum supported API version is 1.44, ..." or "... is too new. Maximum supported ...").
_VERSION_REFUSED = re.compile(r"client version \S+ is too (old|new)", re.IGNORECASE)


def explanation(exc: docker.errors.APIError) -> str:
    """Return the engine's own words for an API error."""
    text = exc.explanation
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return str(text or exc).strip()


def status_code(exc: docker.errors.APIError) -> int | None:
    """Return the HTTP status of an API error, or None when there was no response."""
    code = exc.status_code
    return code if isinstance(code, int) else None


def raise_for_engine_status(response: requests.Response) -> None:
    """Raise docker-py's typed API error (NotFound, ImageNotFound...) for an error response."""
    try:
        response.raise_for_status()
    except requests.exceptions.HTTPError as exc:
        docker.errors.create_api_error_from_http_exception(exc)  # always raises


def version_refused(exc: docker.errors.APIError) -> bool:
    """Return whether the engine refused the request's API version (the host's, not the job's fault)."""
    return bool(_VERSION_REFUSED.search(explanation(exc)))


def version_refusal(host: HostSpec, action: str, detail: str) -> HostMisconfigured:
    """Return the error for an API version that the engine (or docker-py) refuses for ``host``."""
    return HostMisconfigured(
        f"Docker host {host.name!r} refused to {action} in the API version it is configured with: "
        f"{detail}. Set api_version in the host's executor_config to a version the engine supports, "
        "or to 'auto'."
    )


def api_url(api: docker.APIClient, path: str) -> str:
    """Return the versioned URL of ``path`` on the engine, as docker-py builds it."""
    return f"{api.base_url}/v{api.api_version}{path}"


@contextlib.contextmanager
def engine_call(host: HostSpec, action: str) -> Iterator[None]:
    """Raise typed errors for failures while doing ``action`` (a verb phrase) on ``host``.

    Call sites catch the API errors they expect (404, 409) inside the block; whatever else escapes
    is either an engine refusal (:class:`ExecutorError`) or an unreachable engine
    (:class:`ExecutorUnavailable`).
    """
    try:
        yield
    except docker.errors.APIError as exc:
        if version_refused(exc):
            raise version_refusal(host, action, explanation(exc)) from exc
        raise ExecutorError(f"Docker host {host.name!r} refused to {action}: {explanation(exc)}") from exc
    except UNREACHABLE as exc:
        raise ExecutorUnavailable(
            f"Docker host {host.name!r} did not answer while trying to {action}: {exc}"
        ) from exc
    except docker.errors.TLSParameterError as exc:
        # A missing certificate file is a configuration mistake, not an outage: retrying cannot help.
        raise ExecutorError(f"Docker host {host.name!r} has unusable TLS settings: {exc}") from exc
    except docker.errors.DockerException as exc:
        # docker-py wraps connection failures during setup ("Error while fetching server API version").
        raise ExecutorUnavailable(f"Docker host {host.name!r} cannot be used to {action}: {exc}") from exc
