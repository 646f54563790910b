"""Settings for worker subprocesses on a SQLite file of their own (``CM_SQLITE_FILE``), whatever the suite uses.

The busy timeout is short (0.2 s, the default is 5): a locked database then answers with an error
at once, as an unreachable server does, so what paces the worker is its own pause, not SQLite's wait.
"""

from __future__ import annotations

import os

from tests.worker.worker_settings import *  # noqa: F403

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ["CM_SQLITE_FILE"],
        "OPTIONS": {"timeout": 0.2},
    }
}
