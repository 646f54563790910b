"""The price of isolation: one Django task, enqueue to result, in a container vs in-process.

    python -m bench.tasks [--tasks 20]

The same function (``tests.tasks.sample_tasks.add``) runs ``--tasks`` times, one at a time:

- through ``ContainerTaskBackend``: ``enqueue()``, then ``get_result()`` polled every 5 ms until the
  result is final, with ``process_container_jobs --concurrency 1`` already running in a subprocess
  (woken by PostgreSQL's NOTIFY) on the local engine and the locally built Python image
  (tests/tasks/image.py), network ``none``;
- through Django's ``ImmediateBackend``: ``enqueue()`` returns the finished result.

Prints the p50/p95 latency of each and their ratio, then where the container path spends it:
queued -> container running (claim, create, start) and running -> result saved (the interpreter's
start, Django's import, the task, the exit, the harvest). Uses its own database,
``CM_BENCH_TASKS_DATABASE_URL`` (default ``.../cm_bench_tasks``, created and migrated on first use),
so the migrations of a branch under test never meet another benchmark's database.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.throughput import DEFAULT_DATABASE_URL, WORKER_SETTINGS, ensure_database, seconds

ROOT = Path(__file__).resolve().parents[1]
HOST = "bench-tasks"
POLL_SECONDS = 0.005


def task_settings(image: str) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "container_manager.tasks.ContainerTaskBackend",
            "OPTIONS": {"image": image, "host": HOST, "memory_limit": 128, "cpu_limit": 1.0},
        },
        "immediate": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"},
    }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20)
    options = parser.parse_args(argv)

    from tests.tasks import image

    tag = image.build()
    url = os.environ.get(
        "CM_BENCH_TASKS_DATABASE_URL", DEFAULT_DATABASE_URL.replace("cm_bench", "cm_bench_tasks")
    )
    ensure_database(url)
    os.environ |= {
        "DJANGO_SETTINGS_MODULE": "bench.task_settings",
        "CM_BENCH_DATABASE_URL": url,
        "CM_BENCH_WORKER_SETTINGS": json.dumps(WORKER_SETTINGS),
        "CM_BENCH_TASKS": json.dumps(task_settings(tag)),
    }
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)

    from django.tasks import TaskResultStatus

    from container_manager.models import ContainerJob, ExecutorHost
    from tests.tasks.sample_tasks import add

    ExecutorHost.objects.update_or_create(
        name=HOST,
        defaults={
            "executor_type": "docker",
            "host_type": "unix",
            "connection_string": "unix:///var/run/docker.sock",
            "auto_pull_images": False,
            "executor_config": {"default_network": "none"},
            "is_active": True,
            "healthy": True,
        },
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "django", "process_container_jobs", "--concurrency", "1", "--host", HOST],
        cwd=ROOT,
        env=os.environ,
    )
    try:
        add.enqueue(0, 0)  # A first task warms the engine's and the page cache's view of the image.
        containers, queued, running = [], [], []
        for number in range(options.tasks + 1):
            began = time.perf_counter()
            result = add.enqueue(number, 1)
            while not result.is_finished:
                time.sleep(POLL_SECONDS)
                result.refresh()
            elapsed = time.perf_counter() - began
            if result.status != TaskResultStatus.SUCCESSFUL or result.return_value != number + 1:
                raise SystemExit(f"Task {result.id} ended {result.status}: {result.errors}")
            if number == 0:
                continue  # The warm-up's warm-up: the worker was still starting.
            job = ContainerJob.objects.get(pk=result.id)
            containers.append(elapsed)
            queued.append(seconds(job.created_at, job.started_at))
            running.append(seconds(job.started_at, job.completed_at))
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    immediate = []
    for number in range(options.tasks * 10):
        began = time.perf_counter()
        result = add.using(backend="immediate").enqueue(number, 1)
        immediate.append(time.perf_counter() - began)
        if result.return_value != number + 1:
            raise SystemExit(f"ImmediateBackend returned {result.return_value!r} for {number} + 1")

    container_p50, immediate_p50 = statistics.median(containers), statistics.median(immediate)
    print(f"One task, enqueue to result ({options.tasks} tasks, one at a time, image {tag}):")
    print(
        f"  ContainerTaskBackend  p50 {container_p50 * 1000:8.1f} ms   p95 {percentile(containers, 0.95) * 1000:8.1f} ms"
    )
    print(
        f"  ImmediateBackend      p50 {immediate_p50 * 1000:8.3f} ms   p95 {percentile(immediate, 0.95) * 1000:8.3f} ms"
    )
    print(
        f"  isolation costs {container_p50 - immediate_p50:.3f} s per task ({container_p50 / immediate_p50:,.0f}x)"
    )
    print(
        f"  container path p50: queued -> running {statistics.median(queued) * 1000:.0f} ms, "
        f"running -> result saved {statistics.median(running) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
