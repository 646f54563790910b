"""Suite-wide test rules: marks that need a service fail, never skip, when CI is set."""

from __future__ import annotations

import os

import pytest


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
