"""The benchmark's settings plus ``TASKS`` from ``CM_BENCH_TASKS`` (JSON), for bench.tasks and its worker."""

from __future__ import annotations

import json
import os

from bench.settings import *  # noqa: F403

TASKS = json.loads(os.environ.get("CM_BENCH_TASKS", "{}")) or {
    "default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}
}
