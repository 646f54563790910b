"""Settings for worker subprocesses started by tests: the test database, CONTAINER_MANAGER from the env."""

from __future__ import annotations

import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES

CONTAINER_MANAGER = json.loads(os.environ.get("CM_WORKER_SETTINGS", "{}"))
if db_name := os.environ.get("CM_WORKER_DB_NAME"):
    # pytest-django runs tests against "test_<name>"; the worker must use the same database.
    DATABASES["default"]["NAME"] = db_name

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "formatters": {"plain": {"format": "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"}},
    "loggers": {"container_manager": {"handlers": ["stderr"], "level": "INFO"}},
}
