"""Cloud Run Jobs' own limits, checked before a job is sent so the user reads why in our words.

Sources (Cloud Run documentation, "Configure ... for jobs" pages):

- CPU (run/docs/configuring/jobs/cpu): a job needs at least 1 vCPU; above 1 only whole values are
  allowed, and the console offers 1, 2, 4, 6 and 8. The page's fractional-CPU table applies to
  services (it requires request-based billing and concurrency settings jobs do not have).
- Memory (run/docs/configuring/jobs/memory-limits): at least 512 MiB, at most 32 GiB, and per vCPU
  count: 1 vCPU 512 MiB-4 GiB, 2 vCPU 512 MiB-8 GiB, 4 vCPU 2-16 GiB, 6 vCPU 4-24 GiB,
  8 vCPU 4-32 GiB.
- Task timeout (run/docs/configuring/task-timeout): at most 168 hours (7 days). The core policy's
  own, lower maximum applies on top of this.
- Environment (run/docs/configuring/jobs/environment-variables and the container runtime
  contract): the contract's variables are reserved (CLOUD_RUN_JOB, CLOUD_RUN_EXECUTION,
  CLOUD_RUN_TASK_INDEX, CLOUD_RUN_TASK_ATTEMPT, CLOUD_RUN_TASK_COUNT for jobs; PORT, K_SERVICE,
  K_REVISION, K_CONFIGURATION for services) and a container takes at most 1000 variables.
- In-memory volumes (run/docs/configuring/jobs/in-memory-volume-mounts): none may be mounted at
  /dev, /proc, /sys or below them. Each tmpfs mount becomes such a volume.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from cloudrun_executor.translate import SECRET_PREFIX, is_secret_reference
from container_manager_core.types import JobSpec, Violation

MIN_MEMORY_MB = 512
MAX_MEMORY_MB = 32 * 1024
MAX_TIMEOUT_SECONDS = 168 * 3600
MAX_ENV_VARS = 1000
RESERVED_ENV_PREFIX = "CLOUD_RUN_"
RESERVED_ENV_NAMES = frozenset({"PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"})
DISALLOWED_MOUNT_PATHS = ("/dev", "/proc", "/sys")

# vCPUs -> (least, most) memory in MiB, from the jobs memory-limits table.
MEMORY_RANGE_BY_CPU: dict[int, tuple[int, int]] = {
    1: (512, 4 * 1024),
    2: (512, 8 * 1024),
    4: (2 * 1024, 16 * 1024),
    6: (4 * 1024, 24 * 1024),
    8: (4 * 1024, 32 * 1024),
}
ALLOWED_CPUS = tuple(MEMORY_RANGE_BY_CPU)


def cloudrun_job_violations(job: JobSpec) -> Iterator[Violation]:
    """Yield every Cloud Run limit or unsupported setting ``job`` breaks."""
    yield from _memory_and_cpu(job)
    yield from _timeout(job)
    yield from _environment(job)
    yield from _tmpfs(job)
    yield from _unsupported(job)


def _memory_and_cpu(job: JobSpec) -> Iterator[Violation]:
    memory, cpu = job.memory_limit_mb, job.cpu_limit
    memory_in_range = memory is None or MIN_MEMORY_MB <= memory <= MAX_MEMORY_MB
    if not memory_in_range:
        yield Violation(
            "cloudrun_memory_out_of_range",
            f"Cloud Run jobs take between {MIN_MEMORY_MB} MiB and {MAX_MEMORY_MB} MiB (32 GiB) of memory; "
            f"memory_limit_mb is {memory!r}.",
            "memory_limit_mb",
        )
    if cpu is None:
        return
    if cpu not in ALLOWED_CPUS:
        yield Violation(
            "cloudrun_cpu_not_allowed",
            f"Cloud Run jobs take {', '.join(map(str, ALLOWED_CPUS[:-1]))} or {ALLOWED_CPUS[-1]} vCPUs "
            f"(at least 1, whole numbers only); cpu_limit is {cpu!r}.",
            "cpu_limit",
        )
        return
    # The per-CPU memory range is only worth naming once the memory is possible at all.
    if memory is None or not memory_in_range:
        return
    least, most = MEMORY_RANGE_BY_CPU[int(cpu)]
    if not least <= memory <= most:
        yield Violation(
            "cloudrun_memory_cpu_mismatch",
            f"With {int(cpu)} vCPU Cloud Run jobs take between {least} MiB and {most} MiB of memory; "
            f"memory_limit_mb is {memory!r}. Change the memory or the CPU count.",
            "memory_limit_mb",
        )


def _timeout(job: JobSpec) -> Iterator[Violation]:
    if job.timeout_seconds is not None and job.timeout_seconds > MAX_TIMEOUT_SECONDS:
        yield Violation(
            "cloudrun_timeout_too_long",
            f"Cloud Run tasks run for at most {MAX_TIMEOUT_SECONDS} seconds (168 hours); "
            f"timeout_seconds is {job.timeout_seconds!r}.",
            "timeout_seconds",
        )


def _environment(job: JobSpec) -> Iterator[Violation]:
    if len(job.env) > MAX_ENV_VARS:
        yield Violation(
            "cloudrun_too_many_env_vars",
            f"Cloud Run containers take at most {MAX_ENV_VARS} environment variables; the job has {len(job.env)!r}.",
            "env",
        )
    for name in job.env:
        if name.startswith(RESERVED_ENV_PREFIX) or name in RESERVED_ENV_NAMES:
            yield Violation(
                "cloudrun_env_reserved",
                f"Environment variable {name!r} is reserved by Cloud Run (names starting with "
                f"{RESERVED_ENV_PREFIX!r} and {sorted(RESERVED_ENV_NAMES)!r} are set by the platform).",
                "env",
            )
    for name, value in job.env.items():
        if value.startswith(SECRET_PREFIX) and not is_secret_reference(value):
            # The value is not quoted: it may be a secret pasted in by mistake.
            yield Violation(
                "cloudrun_secret_reference_invalid",
                f"Environment variable {name!r} starts with {SECRET_PREFIX!r} but is not a Secret Manager "
                f"reference: write {SECRET_PREFIX}SECRET, {SECRET_PREFIX}SECRET#VERSION or "
                f"{SECRET_PREFIX}projects/PROJECT/secrets/SECRET#VERSION.",
                "env",
            )


def _tmpfs(job: JobSpec) -> Iterator[Violation]:
    for mount in job.tmpfs:
        path = posixpath.normpath(mount.path)
        if any(path == top or path.startswith(top + "/") for top in DISALLOWED_MOUNT_PATHS):
            yield Violation(
                "cloudrun_tmpfs_path_not_allowed",
                f"Cloud Run mounts no volume at {', '.join(DISALLOWED_MOUNT_PATHS)} or below them; the job "
                f"asks for a tmpfs at {mount.path!r}.",
                "tmpfs",
            )


def _unsupported(job: JobSpec) -> Iterator[Violation]:
    if job.networks:
        names = [attachment.name for attachment in job.networks]
        yield Violation(
            "cloudrun_networks_not_applicable",
            f"Cloud Run jobs cannot join container networks or take DNS aliases (Docker only); the job asks "
            f"for networks {names!r}. Use the host's vpc_connector for private network access.",
            "networks",
        )
    # "none" asks for network isolation, a protection: the capability rule names it (see .capabilities).
    if job.network_mode not in (None, "none"):
        yield Violation(
            "cloudrun_network_mode_not_applicable",
            f"Cloud Run jobs have no network modes (Docker only); the job asks for network_mode "
            f"{job.network_mode!r}.",
            "network_mode",
        )
