"""Compare the worker with the raw docker-py floor on the same machine, image, hardening and concurrency.

    python -m bench.throughput --jobs 200 --concurrency 4 [--paced-jobs 96] [--track 100]

Both sides run ``--jobs`` short jobs closed-loop, ``--concurrency`` at a time: the raw floor in
threads (create, start, wait, logs, remove), the worker end to end (create_job -> completed with
logs saved, the next job created as one finishes). Prints jobs/s for both, their ratio, p50/p95
latency, the worker's CPU per job and peak RSS, and its SQL queries and Docker API calls per job.
Then ``--paced-jobs`` more per side arrive at a fixed rate (``--paced-load`` of the floor's), which
gives each side's latency for one job rather than for a queue on a saturated machine.
``--track N`` also measures the worker's RSS while it follows N running containers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_URL = "postgresql://cm:cm@127.0.0.1:5432/cm_bench"
SCRIPT = "echo '{\"ok\": true}'"
WORKER_SETTINGS = {
    "DEFAULT_NETWORK_MODE": "none",  # Never a burst of bridge-networked containers on this engine.
    "DEFAULT_EXECUTOR_TYPE": "docker",
    "STOP_GRACE_SECONDS": 1,
    "REQUIRE_USER_NAMESPACES": False,  # the benchmark's engine does not remap users
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FINISHED_CHANNEL = "bench_finished"
WORKER_APPLICATION_NAME = "cm-bench-worker"
TABLE = "container_manager_containerjob"


@dataclass
class Result:
    label: str
    jobs: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.jobs / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]


def seconds(start: datetime | None, end: datetime | None) -> float:
    """Return the seconds from ``start`` to ``end``, two timestamps a finished job must have."""
    if start is None or end is None:
        raise RuntimeError(f"A finished job lacks a timestamp: {start!r} -> {end!r}.")
    return (end - start).total_seconds()


def ensure_database(url: str) -> None:
    """Create the benchmark database if it does not exist."""
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone() is None:
            conn.execute(f'create database "{name}"')


def setup_django(url: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["CM_BENCH_DATABASE_URL"] = url
    os.environ["CM_BENCH_WORKER_SETTINGS"] = json.dumps(WORKER_SETTINGS)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


# The raw floor ----------------------------------------------------------------------------------


def run_raw(
    client: Any, host: Any, template: Any, jobs: int, concurrency: int, interval: float | None = None
) -> Result:
    """Run ``jobs`` containers with docker-py alone, ``concurrency`` threads, the worker's exact payload.

    Closed-loop when ``interval`` is None (latency from the create); otherwise one job arrives
    every ``interval`` seconds and its latency runs from its arrival, waiting for a thread included.
    """
    import attrs
    from docker_executor.payload import build_create_payload

    api = client.api
    work: queue.SimpleQueue[float | None] = queue.SimpleQueue()
    latencies: list[float] = []
    errors: list[BaseException] = []

    def one() -> None:
        while (arrival := work.get()) is not None:
            spec = attrs.evolve(template, job_id=f"bench-raw-{uuid.uuid4()}")
            payload = build_create_payload(host, spec, api.api_version)
            if interval is None:
                arrival = time.monotonic()
            try:
                container = api.create_container_from_config(payload.config, name=payload.name)["Id"]
                api.start(container)
                api.wait(container)
                api.logs(container, stdout=True, stderr=False, timestamps=True)
                api.logs(container, stdout=False, stderr=True, timestamps=True)
                latencies.append(time.monotonic() - arrival)
                api.remove_container(container, force=True)
            except BaseException as exc:
                errors.append(exc)
                return

    began = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(concurrency)]
    if interval is None:
        for _ in range(jobs):
            work.put(began)
    for thread in threads:
        thread.start()
    if interval is not None:
        for arrival in arrivals(began, jobs, interval):
            work.put(arrival)
    for _ in threads:
        work.put(None)
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"The raw floor failed: {errors[0]!r}") from errors[0]
    return Result("raw docker-py", jobs, time.monotonic() - began, latencies)


def arrivals(began: float, jobs: int, interval: float) -> Iterator[float]:
    """Yield each job's arrival time, sleeping until it comes (a late caller gets it at once)."""
    for number in range(jobs):
        arrival = began + number * interval
        time.sleep(max(0.0, arrival - time.monotonic()))
        yield arrival


# The worker -------------------------------------------------------------------------------------


class WorkerProcess:
    """The worker command in a subprocess, with its CPU time and peak RSS sampled from /proc."""

    def __init__(self, host: str, concurrency: int, poll_interval: float, counts: Path) -> None:
        env = dict(os.environ, CM_BENCH_COUNTS=str(counts), CM_BENCH_APPLICATION_NAME=WORKER_APPLICATION_NAME)
        args = ["--concurrency", str(concurrency), "--poll-interval", str(poll_interval), "--host", host]
        # CM_BENCH_PROFILE=<path>: profile the worker's main thread (claims, database writes) with cProfile.
        profile = (
            ["-m", "cProfile", "-o", os.environ["CM_BENCH_PROFILE"]]
            if os.environ.get("CM_BENCH_PROFILE")
            else []
        )
        self.process = subprocess.Popen(
            [sys.executable, *profile, "-m", "django", "process_container_jobs", *args], cwd=ROOT, env=env
        )
        self.peak_rss = 0

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)

    def wait_until_idle(self, quiet_seconds: float = 0.5, timeout: float = 60) -> None:
        """Return once the worker's start-up is over: no CPU used for ``quiet_seconds``.

        Start-up takes seconds of CPU (more on a loaded machine); a fixed pause let some of it
        into the per-job figures.
        """
        deadline = time.monotonic() + timeout
        quiet_since, cpu_then = time.monotonic(), self.cpu_seconds()
        while time.monotonic() - quiet_since < quiet_seconds:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("The worker did not settle after starting.")
            time.sleep(0.05)
            # One clock tick may be an idle worker's periodic check; more means it is still busy.
            if (cpu_now := self.cpu_seconds()) - cpu_then > 1 / CLOCK_TICKS:
                quiet_since, cpu_then = time.monotonic(), cpu_now

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
                self.peak_rss = max(self.peak_rss, rss)
                return rss
        return 0

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)


def database_cpu_seconds() -> float:
    """Return the CPU time of every PostgreSQL process here, including backends that have exited.

    A backend's time moves to its parent's "children" fields when it is reaped, so those count too.
    """
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # The process ended while we looked.
        command, fields = text[text.index("(") + 1 : text.rindex(")")], text.rsplit(")", 1)[1].split()
        if command.startswith("postgres"):
            total += sum(int(f) for f in fields[11:15])
    return total / CLOCK_TICKS


def process_cpu_seconds(pid: int) -> float:
    """Return a process's utime+stime, 0 if it has ended."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def worker_backends_cpu() -> dict[int, float]:
    """Return the CPU seconds of each PostgreSQL backend serving the worker (named by application_name)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [WORKER_APPLICATION_NAME]
        )
        return {pid: process_cpu_seconds(pid) for (pid,) in cursor.fetchall()}


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, tick: Callable[[], object]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"Timed out waiting for {what}.")
        tick()
        time.sleep(0.005)


@contextlib.contextmanager
def finish_announcements() -> Iterator[Any]:
    """Yield a connection that hears each job's id as it finishes (a trigger in the benchmark's database)."""
    from django.db import connection

    from container_manager.states import FINISHED_STATUSES
    from container_manager.worker.wakeup import plain_connection

    finished = ", ".join(f"'{status}'" for status in sorted(FINISHED_STATUSES))
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE OR REPLACE FUNCTION bench_announce_finished() RETURNS trigger AS $$ BEGIN "
            f"PERFORM pg_notify('{FINISHED_CHANNEL}', NEW.id::text); RETURN NULL; END; $$ LANGUAGE plpgsql"
        )
        cursor.execute(f"DROP TRIGGER IF EXISTS bench_finished ON {TABLE}")
        cursor.execute(
            f"CREATE TRIGGER bench_finished AFTER UPDATE OF status ON {TABLE} FOR EACH ROW "
            f"WHEN (NEW.status IN ({finished}) AND OLD.status IS DISTINCT FROM NEW.status) "
            "EXECUTE FUNCTION bench_announce_finished()"
        )
    with plain_connection() as listening:
        listening.execute(f"LISTEN {FINISHED_CHANNEL}")
        yield listening


def run_worker(
    host: Any,
    image: str,
    jobs: int,
    concurrency: int,
    poll_interval: float,
    counts: Path,
    interval: float | None = None,
) -> WorkerRun:
    """Feed the worker ``jobs`` jobs and return timings and costs.

    Closed-loop (``concurrency`` outstanding, the next created as one finishes) when ``interval``
    is None; otherwise one job is created every ``interval`` seconds, whatever is outstanding.
    """
    from container_manager.models import ContainerJob
    from container_manager.states import JobStatus

    def create() -> str:
        return str(ContainerJob.objects.create_job(image, SCRIPT, "bench", docker_host=host).pk)

    worker = WorkerProcess(host.name, concurrency, poll_interval, counts)
    try:
        with finish_announcements() as announcements:
            worker.wait_until_idle()  # Django start-up, the first reconciliation and health check.
            cpu_before, database_before = worker.cpu_seconds(), database_cpu_seconds()
            backends_before = worker_backends_cpu()
            done: list[str] = []
            arrived: dict[str, float] = {}

            def collect(timeout: float) -> list[str]:
                # Woken by the database when a job finishes: no polling competes with the worker.
                return [notice.payload for notice in announcements.notifies(timeout=timeout, stop_after=1)]

            if interval is None:
                outstanding = {create() for _ in range(concurrency)}
                created = concurrency
                while outstanding:
                    for finished in collect(0.2):
                        if finished in outstanding:
                            outstanding.discard(finished)
                            done.append(finished)
                            if created < jobs:
                                outstanding.add(create())
                                created += 1
                    worker.rss_bytes()
            else:
                # Latency runs from the arrival, as on the raw side (create_job's own time included).
                for _ in arrivals(time.monotonic(), jobs, interval):
                    arrived_at = time.time()
                    arrived[create()] = arrived_at
                    worker.rss_bytes()
                outstanding = set(arrived)
                deadline = time.monotonic() + 300
                while outstanding - set(done) and time.monotonic() < deadline:
                    done.extend(f for f in collect(0.2) if f in outstanding)
                    worker.rss_bytes()
                if outstanding - set(done):
                    raise RuntimeError(f"{len(outstanding - set(done))} paced jobs did not finish in 300 s.")
            cpu = worker.cpu_seconds() - cpu_before
            database_cpu = database_cpu_seconds() - database_before
            # A backend that ended meanwhile is missed; the worker keeps its connections open.
            worker_database_cpu = sum(
                now - backends_before.get(pid, 0.0) for pid, now in worker_backends_cpu().items()
            )
    finally:
        worker.stop()
    rows = list(
        ContainerJob.objects.filter(pk__in=done).values_list(
            "status", "clean_output", "created_at", "completed_at", "pk"
        )
    )
    phases = list(
        ContainerJob.objects.filter(pk__in=done).values_list(
            "created_at", "launched_at", "started_at", "completed_at"
        )
    )
    bad = [r for r in rows if r[0] != JobStatus.COMPLETED or r[1] != '{"ok": true}\n']
    if bad:
        raise RuntimeError(f"{len(bad)} worker jobs did not complete with their output saved: {bad[:3]}")
    latencies = [
        seconds(created_at, completed)
        if not arrived
        else seconds(datetime.fromtimestamp(arrived[str(pk)], UTC), completed)
        for _, _, created_at, completed, pk in rows
    ]
    span = max(seconds(min(r[2] for r in rows), r[3]) for r in rows)
    totals = Counter(json.loads(counts.read_text())) if counts.exists() else Counter()
    return WorkerRun(
        Result("worker", jobs, span, latencies),
        phases,
        cpu,
        database_cpu,
        worker_database_cpu,
        worker.peak_rss,
        totals,
    )


@dataclass
class WorkerRun:
    """One round of the worker: its timings and what it cost, before they are merged over rounds."""

    result: Result
    phases: Sequence[tuple[datetime | None, ...]]
    cpu_seconds: float
    database_cpu_seconds: float  # All of PostgreSQL, the benchmark's own inserts included.
    worker_database_cpu_seconds: float  # The backends serving the worker's own connections.
    peak_rss: int
    totals: Counter[str]


def merge(results: list[Result]) -> Result:
    """Return the rounds' results as one: jobs and seconds added up, latencies pooled."""
    return Result(
        results[0].label,
        sum(r.jobs for r in results),
        sum(r.seconds for r in results),
        [latency for r in results for latency in r.latencies],
    )


def costs_of(runs: list[WorkerRun]) -> dict[str, float]:
    """Return the worker's per-job costs over all rounds."""
    jobs = sum(run.result.jobs for run in runs)
    totals: Counter[str] = sum((run.totals for run in runs), Counter())
    phases = [p for run in runs for p in run.phases]
    costs = {
        "cpu_ms_per_job": 1000 * sum(run.cpu_seconds for run in runs) / jobs,
        "database_cpu_ms_per_job": 1000 * sum(run.database_cpu_seconds for run in runs) / jobs,
        "worker_backends_cpu_ms_per_job": 1000 * sum(run.worker_database_cpu_seconds for run in runs) / jobs,
        "peak_rss_mb": max(run.peak_rss for run in runs) / 2**20,
        "sql_per_job": sum(v for k, v in totals.items() if k.startswith("sql:")) / jobs,
        "docker_calls_per_job": sum(v for k, v in totals.items() if k.startswith("docker:")) / jobs,
    }
    for name, start, end in (("queued->claimed", 0, 1), ("claimed->running", 1, 2), ("running->saved", 2, 3)):
        costs[f"p50 ms {name}"] = 1000 * statistics.median(seconds(p[start], p[end]) for p in phases)
    costs |= {f"  {k}": v / jobs for k, v in sorted(totals.items())}
    return costs


def run_tracking(host: Any, image: str, count: int, counts: Path) -> float:
    """Return the worker's RSS in MB while it follows ``count`` running containers."""
    from container_manager.models import ContainerJob
    from container_manager.states import FINISHED_STATUSES, JobStatus

    host.max_concurrent_jobs = count
    host.save(update_fields=["max_concurrent_jobs"])
    worker = WorkerProcess(host.name, count, 0.5, counts)
    try:
        jobs = [
            # A sleeping container uses next to nothing: small limits, so placement lets all of them
            # run at once on this machine (the defaults, 256 MB and 1 CPU each, would not fit).
            ContainerJob.objects.create_job(
                image, "sleep 600", "bench-track", docker_host=host, memory_limit=16, cpu_limit=0.01
            )
            for _ in range(count)
        ]
        ids = [job.pk for job in jobs]
        running = ContainerJob.objects.filter(pk__in=ids, status=JobStatus.RUNNING)
        wait_until(lambda: running.count() == count, 600, f"{count} running jobs", lambda: None)
        time.sleep(5)
        rss = worker.rss_bytes() / 2**20
        for job in jobs:
            job.refresh_from_db()
            job.request_cancel()
        finished = ContainerJob.objects.filter(pk__in=ids, status__in=FINISHED_STATUSES)
        wait_until(lambda: finished.count() == count, 300, "the tracked jobs to be cancelled", lambda: None)
    finally:
        worker.stop()
    return rss


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=1.0,
        help="The worker's fallback queue poll (s); NOTIFY wakes it.",
    )
    parser.add_argument("--rounds", type=int, default=8, help="Alternate the two sides this many times.")
    parser.add_argument("--track", type=int, default=0, help="Also measure RSS while tracking N containers.")
    parser.add_argument(
        "--paced-jobs", type=int, default=96, help="Jobs per side arriving at a fixed rate (0: none)."
    )
    parser.add_argument("--paced-rounds", type=int, default=4)
    parser.add_argument(
        "--paced-load", type=float, default=0.5, help="Their arrival rate, as a fraction of the floor's."
    )
    parser.add_argument(
        "--database-url", default=os.environ.get("CM_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    args = parser.parse_args(argv)

    ensure_database(args.database_url)
    setup_django(args.database_url)
    from container_manager.models import ContainerJob, ExecutorHost
    from tests.dockertools import build_test_image, docker_client_or_fail

    client = docker_client_or_fail()
    image = build_test_image(client)
    ContainerJob.objects.all().delete()  # The benchmark's own database: start from an empty queue.
    host, _ = ExecutorHost.objects.update_or_create(
        name="bench-docker",
        defaults={
            "executor_type": "docker",
            "connection_string": "unix:///var/run/docker.sock",
            "max_concurrent_jobs": args.concurrency,
            "auto_pull_images": False,
            "healthy": True,
            "executor_config": {"timeout": 30, "health_timeout": 5, "default_network": "none"},
        },
    )
    template = ContainerJob.objects.create_job(image, SCRIPT, "bench-template", docker_host=host)
    spec = template.to_spec()
    template.delete()

    with tempfile.TemporaryDirectory() as tmp:
        # Saturated: both sides as fast as the machine lets them; gives throughput and costs.
        raws, runs = alternate(
            split(args.jobs, args.rounds),
            lambda jobs: run_raw(client, host.to_spec(), spec, jobs, args.concurrency),
            lambda jobs, number: run_worker(
                host, image, jobs, args.concurrency, args.poll_interval, Path(tmp, f"counts-{number}.json")
            ),
        )
        raw, worker, costs = merge(raws), merge([run.result for run in runs]), costs_of(runs)
        print(
            f"\n{args.jobs} jobs in {args.rounds} rounds, concurrency {args.concurrency}, image {image}, "
            f"command {SCRIPT!r}"
        )
        print_latencies(raw, worker, raws, runs)
        print(f"{'ratio':>14}: {worker.rate / raw.rate:6.1%} of the raw floor's throughput")
        for key, value in costs.items():
            print(f"{key:>24}: {value:.2f}")

        if args.paced_jobs:
            # Paced: the same jobs arriving at a fixed rate the machine keeps up with, so a job's
            # latency is its own path through each side rather than the queue of a saturated machine.
            interval = 1 / (args.paced_load * raw.rate)
            print(
                f"\npaced: one job every {1000 * interval:.0f} ms ({args.paced_load:.0%} of the floor's "
                f"rate), {args.paced_jobs} jobs per side in {args.paced_rounds} rounds"
            )
            paced_raws, paced_runs = alternate(
                split(args.paced_jobs, args.paced_rounds),
                lambda jobs: run_raw(client, host.to_spec(), spec, jobs, args.concurrency, interval),
                lambda jobs, number: run_worker(
                    host,
                    image,
                    jobs,
                    args.concurrency,
                    args.poll_interval,
                    Path(tmp, f"paced-{number}.json"),
                    interval,
                ),
            )
            print_latencies(merge(paced_raws), merge([r.result for r in paced_runs]), paced_raws, paced_runs)
            for key, value in costs_of(paced_runs).items():
                if not key.startswith(" "):  # the per-call breakdown is the saturated phase's
                    print(f"{key:>24}: {value:.2f}")

        track_rss = run_tracking(host, image, args.track, Path(tmp, "track.json")) if args.track else None
    if track_rss is not None:
        print(f"{'RSS tracking':>24}: {track_rss:.1f} MB with {args.track} running containers")


def split(jobs: int, rounds: int) -> list[int]:
    return [jobs // rounds + (i < jobs % rounds) for i in range(rounds)]


def alternate(
    per_round: list[int],
    raw_round: Callable[[int], Result],
    worker_round: Callable[[int, int], WorkerRun],
) -> tuple[list[Result], list[WorkerRun]]:
    """Run the two sides in turn, round by round, so a load change on this machine hits both alike."""
    raws: list[Result] = []
    runs: list[WorkerRun] = []
    for number, jobs in enumerate(per_round):
        raws.append(raw_round(jobs))
        runs.append(worker_round(jobs, number))
        raw, worker = raws[-1], runs[-1].result
        print(
            f"round {number + 1}: raw {raw.rate:.2f} jobs/s p50 {1000 * raw.percentile(0.5):.0f} ms,"
            f" worker {worker.rate:.2f} jobs/s p50 {1000 * worker.percentile(0.5):.0f} ms"
        )
    return raws, runs


def print_latencies(raw: Result, worker: Result, raws: list[Result], runs: list[WorkerRun]) -> None:
    for result in (raw, worker):
        print(
            f"{result.label:>14}: {result.rate:6.2f} jobs/s   latency p50 {1000 * result.percentile(0.5):7.1f} ms"
            f"   p95 {1000 * result.percentile(0.95):7.1f} ms   (mean {1000 * statistics.mean(result.latencies):.1f} ms)"
        )
    added = 1000 * (worker.percentile(0.5) - raw.percentile(0.5))
    print(f"{'added p50':>14}: {added:+.1f} ms")
    # The spread between rounds shows how far the machine drifts between two halves of one round.
    paired = [
        1000 * (run.result.percentile(0.5) - raw_round.percentile(0.5))
        for run, raw_round in zip(runs, raws, strict=True)
    ]
    print(f"{'':>14}  per round: {', '.join(f'{d:+.0f}' for d in paired)} ms")


if __name__ == "__main__":
    main()
