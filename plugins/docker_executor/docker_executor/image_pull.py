"""Make sure a job's image is on the host: use it if present, else pull it when the host allows."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import docker
import docker.auth
import docker.errors
import requests

from container_manager_core.errors import ImagePullFailed
from container_manager_core.images import ImageReference, InvalidImageReference
from container_manager_core.types import HostSpec
from docker_executor.config import docker_config
from docker_executor.connection import whole_seconds
from docker_executor.engine_errors import api_url, explanation, raise_for_engine_status

logger = logging.getLogger("docker_executor.image_pull")

_AUTH_FIELDS = ("username", "password", "serveraddress", "identitytoken", "registrytoken", "email")


def ensure_image(api: docker.APIClient, host: HostSpec, image: str) -> None:
    """Return when ``image`` is on the host; pull it if allowed, else raise :class:`ImagePullFailed`."""
    try:
        api.inspect_image(image)  # type: ignore[no-untyped-call]  # untyped in docker-stubs
        return
    except docker.errors.NotFound:
        pass  # missing locally: the host's pull policy decides below
    if not host.auto_pull_images:
        raise ImagePullFailed(
            image, f"it is not on host {host.name!r} and auto_pull_images is off for that host."
        )
    pull_image(api, host, image)


def registry_auth(host: HostSpec, image: str) -> dict[str, str] | None:
    """Return the host's registry credentials for the engine, or None when it has none."""
    raw = docker_config(host).registry_auth
    if raw is None:
        return None
    return {key: str(raw[key]) for key in _AUTH_FIELDS if raw.get(key) not in (None, "")}


def pull_image(api: docker.APIClient, host: HostSpec, image: str) -> None:
    """Pull ``image`` with the host's credentials, failing with the registry's own message.

    docker-py's ``pull()`` posts with ``timeout=None``; this posts through the session with a read
    timeout, so a registry or engine that stops answering cannot hang the worker.
    """
    try:
        reference = ImageReference.parse(image)
    except InvalidImageReference as exc:
        raise ImagePullFailed(image, exc.reason) from exc
    auth = registry_auth(host, image)
    headers = {} if auth is None else {"X-Registry-Auth": docker.auth.encode_header(auth).decode("ascii")}
    params = {"fromImage": reference.name, "tag": reference.digest or reference.tag or "latest"}
    # Never log the password: the user name and registry are enough to debug a refusal.
    logger.info(
        "Pulling %r on host %r as %r.", image, host.name, None if auth is None else auth.get("username")
    )
    config = docker_config(host)
    read_timeout, connect_timeout = whole_seconds(config.pull_timeout), whole_seconds(config.timeout)
    url = api_url(api, "/images/create")
    try:
        response = api.post(
            url, params=params, headers=headers, stream=True, timeout=(connect_timeout, read_timeout)
        )
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise ImagePullFailed(image, f"the engine on host {host.name!r} did not answer: {exc}") from exc
    with response:
        _raise_for_pull_status(image, response)
        _follow_progress(image, host, response, deadline=time.monotonic() + read_timeout)


def _raise_for_pull_status(image: str, response: requests.Response) -> None:
    try:
        raise_for_engine_status(response)
    except docker.errors.APIError as error:
        raise ImagePullFailed(image, explanation(error)) from error


def _follow_progress(image: str, host: HostSpec, response: requests.Response, *, deadline: float) -> None:
    # The engine answers 200 at once and reports failures later in the progress stream.
    try:
        for line in response.iter_lines(chunk_size=None):
            message: Any = json.loads(line) if line else None
            if isinstance(message, dict) and message.get("error"):
                detail = message.get("errorDetail") or {}
                raise ImagePullFailed(image, str(detail.get("message") or message["error"]))
            if time.monotonic() > deadline:
                raise ImagePullFailed(image, f"the pull on host {host.name!r} did not finish in time.")
    except (requests.exceptions.RequestException, OSError) as exc:
        raise ImagePullFailed(image, f"the engine on host {host.name!r} stopped answering: {exc}") from exc
