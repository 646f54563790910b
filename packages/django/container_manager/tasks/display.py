"""What the admin shows of a task job: its call, with secret-named arguments masked.

The environment (where the container gets the same call) shows names only, like every job's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from container_manager_core.secrets import redact


def redacted_task(task: Any) -> Any:
    """Return the job's task record (path, queue, arguments) with secret-named arguments masked."""
    return redact(task) if isinstance(task, Mapping) else task
