"""Build the Cloud Run Job resource that runs one :class:`JobSpec`.

What has no Cloud Run equivalent cannot be sent: the user (Cloud Run runs the image's own), a
read-only root filesystem, a PID limit, network isolation and the stop grace period. A job needing
one of those protections is refused before it gets here (:mod:`.capabilities`), unless its host
accepts it as unenforced (``accept_unenforced``); the limit validator (:mod:`.limits`) refuses
settings that cannot be honoured at all.
"""

from __future__ import annotations

import math
import re

from google.cloud import run_v2
from google.protobuf import duration_pb2

from cloudrun_executor.config import CloudRunConfig
from cloudrun_executor.naming import (
    JOB_ID_ANNOTATION,
    is_label_key,
    label_value,
    managed_labels,
)
from container_manager_core.types import Command, CommandForm, JobSpec, TmpfsMount

CONTAINER_NAME = "job"
# Google Cloud resources carry at most 64 labels.
MAX_LABELS = 64
_MIB = 1024 * 1024
# An environment value "sm://SECRET" or "sm://SECRET#VERSION" (SECRET may be
# "projects/P/secrets/NAME" for another project's) is a Secret Manager reference: Cloud Run reads the
# secret when the task starts, and the value never appears in the job, where anyone with Viewer on the
# project can read plain values.
SECRET_PREFIX = "sm://"  # noqa: S105 (a URL scheme, not a password)
_SECRET_REFERENCE = re.compile(
    r"^sm://(?P<secret>(?:projects/[^/#]+/secrets/)?[A-Za-z0-9_-]{1,255})(?:#(?P<version>latest|[1-9][0-9]*))?$"
)
_EGRESS = {
    "all-traffic": run_v2.VpcAccess.VpcEgress.ALL_TRAFFIC,
    "private-ranges-only": run_v2.VpcAccess.VpcEgress.PRIVATE_RANGES_ONLY,
}


def build_job(job: JobSpec, config: CloudRunConfig) -> run_v2.Job:
    """Return the Cloud Run Job (one task, no Cloud Run retries) that runs ``job``."""
    labels = cloudrun_labels(job, config.owner)
    annotations = {JOB_ID_ANNOTATION: job.job_id}
    task = run_v2.TaskTemplate(
        containers=[_container(job)],
        volumes=[_tmpfs_volume(index, mount) for index, mount in enumerate(job.tmpfs)],
        # Zero must be sent explicitly (the field has presence): left out, Cloud Run retries a
        # failed task 3 times, and retries are the manager's decision, not the platform's.
        max_retries=0,
        # The memory rules .limits checks (512 MiB at least) are the second generation's.
        execution_environment=run_v2.ExecutionEnvironment.EXECUTION_ENVIRONMENT_GEN2,
    )
    if job.timeout_seconds is not None:
        task.timeout = duration_pb2.Duration(seconds=job.timeout_seconds)
    if config.service_account:
        task.service_account = config.service_account
    if config.connector:
        egress = (
            _EGRESS[config.vpc_egress]
            if config.vpc_egress
            else run_v2.VpcAccess.VpcEgress.VPC_EGRESS_UNSPECIFIED
        )
        task.vpc_access = run_v2.VpcAccess(connector=config.connector, egress=egress)
    return run_v2.Job(
        labels=labels,
        annotations=annotations,
        template=run_v2.ExecutionTemplate(
            labels=labels, annotations=annotations, task_count=1, parallelism=1, template=task
        ),
    )


def _container(job: JobSpec) -> run_v2.Container:
    container = run_v2.Container(
        name=CONTAINER_NAME,
        image=job.image,
        env=[env_var(name, value) for name, value in job.env.items()],
        volume_mounts=[
            run_v2.VolumeMount(name=_tmpfs_name(index), mount_path=mount.path)
            for index, mount in enumerate(job.tmpfs)
        ],
    )
    if job.command is not None:
        command, args = split_command(job.command)
        container.command = command
        container.args = args
    if job.working_dir:
        container.working_dir = job.working_dir
    limits = {}
    if job.cpu_limit is not None:
        limits["cpu"] = format_cpu(job.cpu_limit)
    if job.memory_limit_mb is not None:
        limits["memory"] = f"{job.memory_limit_mb}Mi"
    if limits:
        container.resources = run_v2.ResourceRequirements(limits=limits)
    return container


def is_secret_reference(value: str) -> bool:
    """Say whether ``value`` is a well-formed Secret Manager reference."""
    return _SECRET_REFERENCE.match(value) is not None


def env_var(name: str, value: str) -> run_v2.EnvVar:
    """Return the variable, as a Secret Manager reference when ``value`` is one (see SECRET_PREFIX)."""
    match = _SECRET_REFERENCE.match(value)
    if match is None:
        return run_v2.EnvVar(name=name, value=value)
    selector = run_v2.SecretKeySelector(secret=match["secret"], version=match["version"] or "latest")
    return run_v2.EnvVar(name=name, value_source=run_v2.EnvVarSource(secret_key_ref=selector))


def split_command(command: Command) -> tuple[list[str], list[str]]:
    """Return Cloud Run's ``(command, args)``: the entrypoint and its arguments."""
    if command.form is CommandForm.SHELL:
        return ["/bin/sh", "-c", command.args[0]], []
    return [command.args[0]], list(command.args[1:])


def format_cpu(cpu: float) -> str:
    """Return a CPU count the way Cloud Run spells it ("1", "2", "0.5")."""
    return str(int(cpu)) if float(cpu).is_integer() else repr(float(cpu))


def _tmpfs_name(index: int) -> str:
    return f"tmpfs-{index}"


def _tmpfs_volume(index: int, mount: TmpfsMount) -> run_v2.Volume:
    # Cloud Run's in-memory volumes are tmpfs, capped like Docker's --tmpfs size (rounded up to MiB).
    size_mib = max(1, math.ceil(mount.size_bytes / _MIB))
    return run_v2.Volume(
        name=_tmpfs_name(index),
        empty_dir=run_v2.EmptyDirVolumeSource(
            medium=run_v2.EmptyDirVolumeSource.Medium.MEMORY, size_limit=f"{size_mib}Mi"
        ),
    )


def cloudrun_labels(job: JobSpec, owner: str) -> dict[str, str]:
    """Return the manager's labels plus the job's own, rewritten to Cloud Run's label rules."""
    labels = managed_labels(job.job_id, owner)
    for key, value in job.labels.items():
        if len(labels) >= MAX_LABELS:
            break
        cloud_key = label_value(key)
        if not cloud_key[:1].isalpha():
            cloud_key = ("l-" + cloud_key)[:63]
        # The manager's own labels win: a job must not be able to pose as another job.
        if is_label_key(cloud_key) and cloud_key not in labels:
            labels[cloud_key] = label_value(value)
    return labels
