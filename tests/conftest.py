"""Suite-wide test rules and shared fixtures.

Marks that need a service fail, never skip, when CI is set. ``docker_client`` and ``test_image``
are the one client of the local engine and the busybox test image every Docker test shares.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import docker


def require_service(item: pytest.Item, *, mark: str, available: bool, hint: str) -> None:
    """Skip ``item`` if it carries ``mark`` and the service is missing, or fail it when CI is set."""
    if item.get_closest_marker(mark) is None or available:
        return
    message = f"This test is marked {mark!r} and {hint}"
    if os.environ.get("CI"):
        pytest.fail(f"{message} CI is set, so a missing service is a failure, not a skip.", pytrace=False)
    pytest.skip(message)


def pytest_runtest_setup(item: pytest.Item) -> None:
    require_service(
        item,
        mark="postgres",
        available=bool(os.environ.get("CM_TEST_DATABASE_URL")),
        hint="needs PostgreSQL: set CM_TEST_DATABASE_URL=postgresql://user:pass@host:5432/db.",
    )


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client of the local engine (fails, never skips, without one); removes what this run left behind."""
    from tests.dockertools import RUN_ID, docker_client_or_fail, remove_labelled

    client = docker_client_or_fail()
    yield client
    remove_labelled(client, RUN_ID)
    client.close()


@pytest.fixture(scope="session")
def test_image(docker_client: docker.DockerClient) -> str:
    """The busybox test image, built locally once (cached by the engine)."""
    from tests.dockertools import build_test_image

    return build_test_image(docker_client)
