"""One cached plugin manager per process, found through entry points, resettable for tests."""

from __future__ import annotations

from container_manager.executors.registry import get_plugin_manager, reset_plugin_manager


def test_the_manager_is_cached_and_knows_the_installed_plugins():
    manager = get_plugin_manager()
    assert get_plugin_manager() is manager
    assert "mock" in manager.executor_types()


def test_reset_loads_a_fresh_manager():
    first = get_plugin_manager()
    reset_plugin_manager()
    second = get_plugin_manager()
    assert second is not first
    assert second.executor_types() == first.executor_types()
