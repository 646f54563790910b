"""What Cloud Run Jobs can enforce of a job's protections, from the Cloud Run Admin API v2.

- Memory and CPU: the container's ``resources.limits``; the run time: the task ``timeout``.
- Scratch space: second-generation in-memory volumes (``emptyDir`` with ``medium: MEMORY``) take a
  ``size_limit`` (run/docs/configuring/jobs/in-memory-volume-mounts).
- No user: ``run_v2.Container`` has no user or security-context field; the container runs as the
  image's own user, root unless the image says otherwise.
- No read-only root: the container runtime contract says the container's filesystem is writable
  (an in-memory filesystem), and nothing in the API makes it read-only.
- No process limit: nothing in the API sets one.
- No network isolation: a job always has network access; a VPC connector routes it, never cuts it.

A host may accept these as unenforced, by name, in its ``accept_unenforced`` config key.
"""

from __future__ import annotations

from container_manager_core.capabilities import Capabilities

CLOUD_RUN_CAPABILITIES = Capabilities(
    non_root_user=False,
    read_only_root=False,
    pids_limit=False,
    memory_limit=True,
    cpu_limit=True,
    timeout=True,
    network_isolation=False,
    tmpfs=True,
)
# The names a host's accept_unenforced may list: exactly what Cloud Run cannot enforce.
ACCEPTABLE = CLOUD_RUN_CAPABILITIES.unenforced()
