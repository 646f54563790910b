"""Settings for the documentation's shell examples: the test settings, on the documents' database.

``docs/conftest.py`` runs each ``bash`` example with ``DJANGO_SETTINGS_MODULE=docs.settings`` and
``CM_DOCS_DB_NAME`` set to the database the Python examples of the same document use, so a job
queued in Python is the job ``manage.py process_container_jobs --once`` runs.
"""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

if db_name := os.environ.get("CM_DOCS_DB_NAME"):
    DATABASES["default"]["NAME"] = db_name

# As in the Python examples (docs/harness.py).
CONTAINER_MANAGER = {"POLL_INTERVAL": 0.1, "REQUIRE_USER_NAMESPACES": False}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"container_manager": {"handlers": ["stderr"], "level": "INFO"}},
}
