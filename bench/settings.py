"""Django settings for the benchmark: its own PostgreSQL database and worker settings from the env.

With CM_BENCH_COUNTS set to a path, the process counts its SQL queries and Docker API requests
and writes them there as JSON at exit (the worker's per-job cost).
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlparse

from tests.settings import *  # noqa: F403

_url = urlparse(os.environ.get("CM_BENCH_DATABASE_URL", "postgresql://cm:cm@127.0.0.1:5432/cm_bench"))
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/"),
        "USER": _url.username or "",
        "PASSWORD": _url.password or "",
        "HOST": _url.hostname or "",
        "PORT": str(_url.port or ""),
        # Names the worker's own backends, so their CPU can be told from the benchmark's.
        "OPTIONS": {"application_name": os.environ.get("CM_BENCH_APPLICATION_NAME", "cm-bench")},
    }
}
CONTAINER_MANAGER = json.loads(os.environ.get("CM_BENCH_WORKER_SETTINGS", "{}"))
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"container_manager": {"handlers": ["null"], "level": "WARNING", "propagate": False}},
}

if os.environ.get("CM_BENCH_COUNTS"):
    from bench import counting

    counting.install(os.environ["CM_BENCH_COUNTS"])

# The benchmark's engine does not remap users and it says so (REQUIRE_USER_NAMESPACES off): the
# warning that states it would otherwise be printed by every round's worker.
SILENCED_SYSTEM_CHECKS = ["container_manager.W003"]
