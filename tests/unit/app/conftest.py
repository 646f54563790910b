"""Fixtures for the app's unit tests: a clean mock executor for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mock_executor.plugin import plugin as mock_plugin

from container_manager.models import ExecutorHost
from tests.factories import make_host


@pytest.fixture(autouse=True)
def _reset_mock_executor() -> Iterator[None]:
    # The mock keeps executions in memory for the whole process; tests must not see each other's.
    mock_plugin.reset()
    yield
    mock_plugin.reset()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    # admin_client logs a superuser in; the default PBKDF2 hasher would dominate the admin tests.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def host(db: None) -> ExecutorHost:
    """Return an active, healthy mock host."""
    return make_host()
