"""How the worker's pace holds behind a long queue: K urgent mock jobs on an empty queue and behind backlogs.

    python -m bench.scale [--jobs 2000] [--concurrency 16] [--backlogs 0,100000,1000000] [--workers 1,4]
                          [--rounds 3] [--track 1000]

Each backlog size has its own database (``<--database-url>_<size>``), seeded once with queued jobs
of a lower priority (one INSERT ... SELECT generate_series) and kept between invocations. For each
number of worker processes (mock executor, instant jobs, ``--concurrency`` each), ``--jobs`` urgent
jobs are queued beside the backlog, the workers are started, and the time from the first urgent
claim to the last urgent completion is measured (the issue's measurement). The rounds go through every backlog in turn, so a change in the machine's load hits all
alike; each figure is the median over the rounds. Printed per run: seconds, jobs/s, the ratio to
the empty queue's run with as many workers, and the claim's database time per claimed job (the
wall time of the statements each claim sends, measured in the workers). Per backlog: the candidate
query's execution time under EXPLAIN ANALYZE. ``--track N``: the RSS of one worker following N
running mock jobs.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bench.throughput import WorkerProcess, ensure_database

DEFAULT_DATABASE_URL = "postgresql://cm:cm@127.0.0.1:5432/cm_bench_scale"  # _<backlog> appended
HOST = "bench-mock"
URGENT = 10  # The measured jobs' priority; the backlog's is 0.
WORKER_SETTINGS = {
    "DEFAULT_EXECUTOR_TYPE": "mock",
    "SHUTDOWN_GRACE_SECONDS": 5,
    "LEASE_SECONDS": 120,
}


@dataclass
class Run:
    backlog: int
    workers: int
    jobs: int
    seconds: float
    claimed: int
    claim_sql_us: int

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds

    @property
    def claim_ms_per_job(self) -> float:
        return self.claim_sql_us / 1000 / max(1, self.claimed)


def setup_django(url: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["CM_BENCH_DATABASE_URL"] = url
    os.environ["CM_BENCH_WORKER_SETTINGS"] = json.dumps(WORKER_SETTINGS)
    import django

    django.setup()


def use_database(url: str) -> None:
    """Point this process and the workers it starts at ``url``'s database, created and migrated."""
    from django.core.management import call_command
    from django.db import connections

    ensure_database(url)
    connection = connections["default"]
    connection.close()
    connection.settings_dict["NAME"] = urlparse(url).path.lstrip("/")
    os.environ["CM_BENCH_DATABASE_URL"] = url  # read by bench.settings in each worker
    call_command("migrate", verbosity=0)


def execute(sql: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql)


def prepare_host(capacity: int) -> Any:
    from container_manager.models import ExecutorHost

    host, _ = ExecutorHost.objects.update_or_create(
        name=HOST,
        defaults={
            "executor_type": "mock",
            "host_type": ExecutorHost.HostType.API,
            "connection_string": "",
            "max_concurrent_jobs": capacity,
            "healthy": True,
            "is_active": True,
        },
    )
    return host


def reset_backlog(size: int) -> None:
    """Leave exactly ``size`` queued backlog jobs and nothing else, vacuumed and analysed."""
    from container_manager.models import ContainerJob
    from container_manager.states import JobStatus
    from tests.seeding import seed_jobs

    ContainerJob.objects.exclude(status=JobStatus.PENDING, priority=0).delete()
    queued = ContainerJob.objects.filter(status=JobStatus.PENDING, priority=0)
    have = queued.count()
    if have > size:
        execute(
            f"DELETE FROM {ContainerJob._meta.db_table} WHERE id IN "  # noqa: S608 - model metadata only
            f"(SELECT id FROM {ContainerJob._meta.db_table} WHERE status = 'pending' LIMIT {have - size})"
        )
    seed_jobs(size - have, name="backlog") if size > have else None
    # A deployment's autovacuum keeps the statistics and the visibility map fresh; so does this.
    execute(f"VACUUM ANALYZE {ContainerJob._meta.db_table}")


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Timed out waiting for {what}.")
        time.sleep(interval)


def run_once(backlog: int, workers: int, jobs: int, concurrency: int, tmp: Path) -> Run:
    """Queue ``jobs`` urgent jobs, start ``workers`` workers, and time the urgent jobs.

    As in the issue's measurement: the jobs wait beside the backlog, then the workers run them. The
    time runs from the first urgent claim to the last urgent completion, so the workers' start-up
    is not counted, on an empty queue or behind a backlog alike.
    """
    from django.db.models import Max, Min
    from django.utils import timezone

    from container_manager.models import ContainerJob
    from container_manager.states import ACTIVE_STATUSES, CLAIMABLE_STATUSES, FINISHED_STATUSES, JobStatus
    from tests.seeding import seed_jobs

    counts = [tmp / f"counts-{backlog}-{workers}-{n}.json" for n in range(workers)]
    # Created "just now", a millisecond apart, oldest first: the order a burst of create_job gives.
    seed_jobs(jobs, priority=URGENT, name="urgent", oldest=timezone.now() - timedelta(milliseconds=jobs))
    # The benchmark's polls read indexes only (the queue, the host's active jobs), or they would
    # scan the backlog and take CPU from the workers they measure.
    urgent_left = (
        ContainerJob.objects.filter(priority=URGENT, status__in=CLAIMABLE_STATUSES),
        ContainerJob.objects.filter(docker_host__name=HOST, status__in=ACTIVE_STATUSES, priority=URGENT),
    )
    processes = [WorkerProcess(HOST, concurrency, 1.0, path) for path in counts]
    try:
        wait_until(
            lambda: not any(q.exists() for q in urgent_left), 600, f"{jobs} urgent jobs to finish", 0.2
        )
    finally:
        for process in processes:
            process.stop()
    urgent = ContainerJob.objects.filter(status__in=FINISHED_STATUSES, priority=URGENT)
    span = urgent.aggregate(first=Min("launched_at"), last=Max("completed_at"))
    if urgent.filter(status=JobStatus.COMPLETED).count() != jobs:
        raise RuntimeError("Some urgent jobs did not complete.")
    totals: Counter[str] = Counter()
    for path in counts:
        totals.update(json.loads(path.read_text()) if path.exists() else {})
    seconds = (span["last"] - span["first"]).total_seconds()
    return Run(backlog, workers, jobs, seconds, totals["claimed"], totals["sql_us claim"])


def candidate_query_ms(concurrency: int) -> float:
    """Execution time of the claim's candidate query on the table as it is (EXPLAIN ANALYZE, median of 5)."""
    import statistics

    from django.db import transaction
    from django.utils import timezone

    from container_manager.models import ExecutorHost
    from container_manager.worker import claim_sql
    from tests.plans import explain_statements

    host = ExecutorHost.objects.get(name=HOST)
    times = []
    for _ in range(5):
        with transaction.atomic():
            (plan,) = explain_statements(
                lambda: claim_sql.candidates(
                    timezone.now(),
                    host_pks=[host.pk],
                    floating_types=["", "mock"],
                    limit=2 * concurrency,
                )
            )
            times.append(plan.execution_ms)
    return statistics.median(times)


def run_tracking(count: int, tmp: Path) -> float:
    """Return one worker's RSS in MB while it follows ``count`` running mock jobs."""
    from container_manager.models import ContainerJob
    from container_manager.states import JobStatus
    from tests.seeding import seed_jobs

    ContainerJob.objects.all().delete()
    process = WorkerProcess(HOST, count, 1.0, tmp / "track.json")
    try:
        process.wait_until_idle()
        seed_jobs(count, priority=URGENT, name="tracked", environment={"MOCK_DURATION": "600"})
        running = ContainerJob.objects.filter(status=JobStatus.RUNNING)
        wait_until(lambda: running.count() == count, 600, f"{count} running jobs")
        time.sleep(5)
        rss = process.rss_bytes() / 2**20
    finally:
        process.stop()
    ContainerJob.objects.all().delete()
    return rss


def median_runs(runs: Sequence[Run]) -> list[Run]:
    """Return one run per (backlog, workers): the median seconds over the rounds, costs summed."""
    import statistics

    merged = []
    for key in dict.fromkeys((run.backlog, run.workers) for run in runs):
        same = [run for run in runs if (run.backlog, run.workers) == key]
        merged.append(
            Run(
                *key,
                same[0].jobs,
                statistics.median(run.seconds for run in same),
                sum(run.claimed for run in same),
                sum(run.claim_sql_us for run in same),
            )
        )
    return merged


def print_runs(runs: Sequence[Run]) -> None:
    empty = {run.workers: run for run in runs if run.backlog == 0}
    print(
        f"\n{'backlog':>9} {'workers':>7} {'jobs':>6} {'seconds':>8} {'jobs/s':>8} {'vs empty':>9} {'claim DB ms/job':>16}"
    )
    for run in sorted(runs, key=lambda r: (r.workers, r.backlog)):
        base = empty.get(run.workers)
        ratio = f"{run.seconds / base.seconds:8.2f}x" if base else f"{'-':>9}"
        print(
            f"{run.backlog:>9} {run.workers:>7} {run.jobs:>6} {run.seconds:>8.2f} {run.rate:>8.1f} {ratio} "
            f"{run.claim_ms_per_job:>16.3f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2000, help="Urgent jobs timed per run.")
    parser.add_argument("--concurrency", type=int, default=16, help="Each worker's concurrency.")
    parser.add_argument("--backlogs", default="0,100000,1000000", help="Backlog sizes, comma-separated.")
    parser.add_argument("--workers", default="1,4", help="Worker process counts, comma-separated.")
    parser.add_argument("--rounds", type=int, default=3, help="Go through every backlog this many times.")
    parser.add_argument(
        "--track", type=int, default=1000, help="Tracked running jobs for the RSS figure (0: none)."
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("CM_BENCH_SCALE_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="Each backlog's database is this one's name with _<backlog> appended.",
    )
    args = parser.parse_args(argv)
    backlogs = sorted(int(b) for b in args.backlogs.split(","))
    worker_counts = [int(w) for w in args.workers.split(",")]

    def url_of(backlog: int) -> str:
        return f"{args.database_url}_{backlog}"

    setup_django(url_of(backlogs[0]))
    capacity = max(args.track, max(worker_counts) * args.concurrency)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        track_rss = None
        if args.track:
            use_database(url_of(backlogs[0]))
            prepare_host(capacity)
            reset_backlog(0)
            track_rss = run_tracking(args.track, Path(tmp))
            print(f"RSS of one worker following {args.track} running mock jobs: {track_rss:.1f} MB")
        for backlog in backlogs:
            started = time.monotonic()
            use_database(url_of(backlog))
            prepare_host(capacity)
            reset_backlog(backlog)
            print(
                f"backlog {backlog}: ready in {time.monotonic() - started:.1f} s; candidate query "
                f"{candidate_query_ms(args.concurrency):.3f} ms (EXPLAIN ANALYZE)"
            )
        for number in range(args.rounds):
            for backlog in backlogs:
                use_database(url_of(backlog))
                for workers in worker_counts:
                    reset_backlog(backlog)
                    runs.append(run_once(backlog, workers, args.jobs, args.concurrency, Path(tmp)))
                    last = runs[-1]
                    print(
                        f"round {number + 1}, backlog {backlog}, {workers} worker(s): {last.seconds:.2f} s, "
                        f"{last.rate:.1f} jobs/s, claim DB {last.claim_ms_per_job:.3f} ms per claimed job"
                    )
    print_runs(median_runs(runs))
    if track_rss is not None:
        print(f"\nRSS following {args.track} running jobs: {track_rss:.1f} MB")


if __name__ == "__main__":
    main()
