"""The labels that tie an execution to a job and to this manager: one set of names for the app and the plugins.

The app puts them on every job's spec and an executor reads them back to recognise its executions,
so a label renamed on one side and not the other would orphan every running job.
"""

from __future__ import annotations

from typing import Final

MANAGED_LABEL: Final = "container_manager.managed"
JOB_ID_LABEL: Final = "container_manager.job_id"
ATTEMPT_LABEL: Final = "container_manager.attempt"
HOST_LABEL: Final = "container_manager.host"
# Which manager deployment (database of jobs) owns the execution: see HostSpec.owner.
OWNER_LABEL: Final = "container_manager.owner"
