"""pytest plugin (entry point ``pytest11``) that provides the contract kit's default fixtures."""

from __future__ import annotations

import pytest

from container_manager_core.plugins import PluginManager


@pytest.fixture(scope="session")
def contract_manager() -> PluginManager:
    """Return a plugin manager that found the installed plugins through their entry points."""
    return PluginManager()


@pytest.fixture
def contract_timeout() -> float:
    """Return how long the kit waits for a short job to exit, in seconds."""
    return 60.0
