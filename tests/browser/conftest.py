"""Fixtures for browser tests: Debian's chromium driven by Playwright, the live server, a real worker.

The browser is /usr/bin/chromium (Debian's package; Playwright cannot download its own here). The
server is pytest-django's ``live_server`` and the worker a real ``Worker`` in a thread of this
process, running jobs on the local Docker Engine. Screenshots go to ``CM_TEST_ARTIFACTS`` (default
``test-artifacts/`` at the repository root) under ``screenshots/``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from django.db import connection, connections

from container_manager.models import ContainerJob, ExecutorHost
from container_manager.worker.worker import Worker
from container_manager_core.labels import JOB_ID_LABEL, MANAGED_LABEL

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("CM_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "screenshots"
# Short cadences so the page sees a job start, print and end within seconds; network "none": these
# tests are not about networking.
WORKER_SETTINGS: dict[str, Any] = {
    "POLL_INTERVAL": 0.2,
    "HEALTH_CHECK_INTERVAL": 5,
    "RECONCILE_INTERVAL": 30,
    "LEASE_SECONDS": 15,
    "STOP_GRACE_SECONDS": 1,
    "SHUTDOWN_GRACE_SECONDS": 5,
    "DEFAULT_NETWORK_MODE": "none",
    "DEFAULT_EXECUTOR_TYPE": "docker",
    "REQUIRE_USER_NAMESPACES": False,  # the local engine does not remap users
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one module's tests, and Playwright's event loop confined to them.

    Playwright's sync API marks its event loop as running in this thread. While it is, Django's
    thread-critical connection storage hands out separate connections (async storage) and refuses
    sync database calls unless ``DJANGO_ALLOW_ASYNC_UNSAFE`` is set. Kept for the whole session, that
    leaked into every later test: their connections lived in that storage, which pytest-django's
    teardown never closes, so it could not drop the test database ("1 other session"). So the loop
    lives for this module only, and its connections are closed before it stops.
    """
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/setup does).")
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield from _chromium(sync_playwright)
    finally:
        if previous is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def _chromium(sync_playwright: Any) -> Iterator[Any]:
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where chromium refuses its sandbox.
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()
            connections.close_all()  # the connections opened while the loop ran (see browser())


@pytest.fixture
def page(browser: Any, live_server: Any, admin_user: Any) -> Iterator[Any]:
    """A logged-in admin's browser tab: it signs in through the login form, as a person does."""
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    tab.goto(f"{live_server.url}/admin/login/")
    tab.fill("#id_username", "admin")
    tab.fill("#id_password", "password")
    tab.click("input[type=submit]")
    tab.wait_for_selector("#site-name")
    yield tab
    context.close()


@pytest.fixture
def docker_host(transactional_db: None, settings: Any) -> ExecutorHost:
    settings.CONTAINER_MANAGER = dict(WORKER_SETTINGS)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return ExecutorHost.objects.create(
        name="browser-docker",
        executor_type="docker",
        connection_string="unix:///var/run/docker.sock",
        auto_pull_images=False,
        max_concurrent_jobs=2,
        executor_config={"timeout": 30, "health_timeout": 5, "default_network": "none"},
    )


@pytest.fixture
def worker(docker_host: ExecutorHost, docker_client: docker.DockerClient) -> Iterator[Worker]:
    """A real worker in a thread, on the Docker host; stopped, and its jobs' containers removed, after."""
    running = Worker(worker_id="browser-worker", concurrency=2, host_names=[docker_host.name])

    def run() -> None:
        try:
            running.run()
        finally:
            connection.close()

    thread = threading.Thread(target=run, name="browser-worker", daemon=True)
    thread.start()
    yield running
    running.request_stop()
    thread.join(timeout=30)
    job_ids = {str(pk) for pk in ContainerJob.objects.values_list("pk", flat=True)}
    for found in docker_client.api.containers(all=True, filters={"label": f"{MANAGED_LABEL}=true"}):
        if (found.get("Labels") or {}).get(JOB_ID_LABEL) in job_ids:
            docker_client.api.remove_container(found["Id"], force=True)


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[Any, str], Path]:
    """Save a full-page screenshot as ``<test name>-<label>.png``; return its path."""

    def take(tab: Any, label: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{request.node.name}-{label}.png"
        tab.screenshot(path=str(path), full_page=True)
        return path

    return take
