"""Worker subprocess settings with no LOGGING for container_manager, as a project fresh from pip has."""

from __future__ import annotations

from tests.worker.worker_settings import *  # noqa: F403

del LOGGING  # noqa: F821 - Django's default LOGGING configures the ``django`` loggers only.
