"""The main job: one real container job, end to end, on SQLite and the local Docker daemon.

Run it with ``./scripts/demo`` (or ``uv run python -m example.demo``). It migrates the example
database, builds a tiny local image, registers the local daemon as an ExecutorHost, queues a job,
runs the worker once, and prints what the database recorded.
"""

from __future__ import annotations

import os
import sys

import django


def main() -> int:
    """Run one job through the whole life cycle and print its record; return the exit status."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
    django.setup()

    import docker
    from django.core.management import call_command

    from container_manager.models import ContainerJob, ExecutorHost
    from example.image import build_image

    call_command("migrate", verbosity=0)
    socket = os.environ.get("CM_DOCKER_SOCKET", "unix:///var/run/docker.sock")
    client = docker.DockerClient(base_url=socket, timeout=30)
    image = build_image(client)
    client.close()

    host, _ = ExecutorHost.objects.update_or_create(
        name="local-docker",
        defaults={
            "executor_type": "docker",
            "host_type": "unix",
            "connection_string": socket,
            "max_concurrent_jobs": 5,
            "weight": 100,
            "is_active": True,
            "healthy": True,
            "auto_pull_images": False,
        },
    )
    job = ContainerJob.objects.create_job(
        image=image,
        # A few seconds of work, so the worker's usage samples (taken while a job runs) have figures.
        command=(
            'echo "hello from job $JOB_NAME as uid $(id -u)"; i=0; '
            "while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 2; "
            'echo "{\\"answer\\": 42}"'
        ),
        name="hello",
        environment_vars={"JOB_NAME": "hello"},
        memory_limit=64,
        cpu_limit=0.5,
        timeout_seconds=60,
        docker_host=host,
    )
    print(f"queued job {job.id} on {host.name}: {job.docker_image} {job.command!r}")

    call_command("process_container_jobs", once=True, worker_id="example-demo")

    job.refresh_from_db()
    print(f"status:        {job.status} ({job.termination_reason}), exit code {job.exit_code}")
    print(f"duration:      {job.duration}")
    if job.max_memory_usage is not None and job.cpu_usage_percent is not None:
        usage = (
            f"{job.max_memory_usage / 2**20:.1f} MiB peak, {job.cpu_usage_percent:.1f}% of a core on average"
        )
    else:
        usage = "not measured (the job ended before the first sample)"
    print(f"usage:         {usage}")
    print(f"stdout (raw):  {job.stdout_log.strip()}")
    print(f"clean output:  {job.clean_output.strip()}")
    print(f"parsed output: {job.parsed_output}")
    print(f"container:     {job.execution_id[:12]} (removed after harvest)")
    return 0 if job.status == "completed" and job.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
