"""One core PluginManager per process, found through the ``container_manager`` entry points."""

from __future__ import annotations

import functools

from container_manager_core.plugins import PluginManager


@functools.cache
def get_plugin_manager() -> PluginManager:
    """Return this process's plugin manager, loading the installed plugins on first use."""
    # Loading entry points imports every plugin (and its SDK), so do it once, and not at import time.
    return PluginManager()


def reset_plugin_manager() -> None:
    """Forget the cached plugin manager so the next call loads the plugins again (for tests)."""
    get_plugin_manager.cache_clear()
