"""Measure a container's peak memory and average CPU without blocking the caller.

The engine samples stats once a second: ``stats(stream=False)`` waits for two samples (1-2 s) and
even ``one_shot=True`` (API >= 1.41) waits for the next one (0-1 s on Docker 20.10, measured). So
for a local engine the cgroup files are read directly (well under a millisecond), and the one-shot
stats are only the fallback for engines on other machines. The last sample of each container is
cached, because the cgroup disappears with the process and an exited container has no figures left.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import docker
import docker.utils

from container_manager_core.types import ResourceUsage
from docker_executor.state import parse_engine_time

CGROUP_ROOT = Path("/sys/fs/cgroup")
ONE_SHOT_MIN_API = "1.41"
_CACHE_SIZE = 4096


@attrs.frozen
class Sample:
    """What was known about a container at one moment, ``wall_seconds`` after it started."""

    peak_memory_bytes: int | None
    cpu_seconds: float | None
    wall_seconds: float

    def merged_with(self, older: Sample | None) -> Sample:
        """Return this sample with the highest peak either sample saw."""
        if older is None or older.peak_memory_bytes is None:
            return self
        if self.peak_memory_bytes is None:
            return attrs.evolve(self, peak_memory_bytes=older.peak_memory_bytes)
        return attrs.evolve(self, peak_memory_bytes=max(self.peak_memory_bytes, older.peak_memory_bytes))

    def usage(self) -> ResourceUsage:
        """Return the figures, with CPU as the average percent of one core since the start."""
        average = None
        if self.cpu_seconds is not None and self.wall_seconds > 0:
            average = 100.0 * self.cpu_seconds / self.wall_seconds
        return ResourceUsage(peak_memory_bytes=self.peak_memory_bytes, average_cpu_percent=average)


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_keyed(path: Path, key: str) -> int | None:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def cgroup_dirs(pid: int, container_id: str, root: Path = CGROUP_ROOT) -> dict[str, Path]:
    """Return the cgroup directory per controller of process ``pid`` ("unified" for cgroup v2).

    Only paths that name ``container_id`` are returned: if this process does not share the engine's
    PID namespace, ``pid`` may be some unrelated process here, and its figures must not be reported.
    """
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return {}
    dirs: dict[str, Path] = {}
    for line in lines:
        _hierarchy, controllers, path = line.split(":", 2)
        if container_id not in path:
            continue
        relative = path.lstrip("/")
        if not controllers:
            dirs["unified"] = root / "unified" / relative if (root / "unified").is_dir() else root / relative
        for controller in controllers.split(","):
            dirs[controller] = root / controllers / relative
    return dirs


def process_age(pid: int) -> float | None:
    """Return how many seconds ago process ``pid`` started, from ``/proc`` (None if unreadable).

    The engine's StartedAt is stamped after the container's first process already ran (and the
    cgroup already counted its CPU time), so on a young container it would inflate the average.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        # Field 22 (starttime, in clock ticks since boot), counted after the ")" that ends the name.
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))


def cgroup_sample(
    pid: int, container_id: str, wall_seconds: float, root: Path = CGROUP_ROOT
) -> Sample | None:
    """Read peak memory and CPU time straight from the container's cgroup, or None if unreadable.

    ``wall_seconds`` (time since the engine's StartedAt) is used only when the process age is unreadable.
    """
    dirs = cgroup_dirs(pid, container_id, root)
    age = process_age(pid)
    wall_seconds = wall_seconds if age is None else age
    peak: int | None = None
    cpu: float | None = None
    if "memory" in dirs:  # cgroup v1
        peak = _read_int(dirs["memory"] / "memory.max_usage_in_bytes")
    if "cpuacct" in dirs:
        nanos = _read_int(dirs["cpuacct"] / "cpuacct.usage")
        cpu = None if nanos is None else nanos / 1e9
    if "unified" in dirs and (peak is None or cpu is None):  # cgroup v2
        unified = dirs["unified"]
        if peak is None:
            peak = _read_int(unified / "memory.peak")  # kernel >= 5.19
        if cpu is None:
            micros = _read_keyed(unified / "cpu.stat", "usage_usec")
            cpu = None if micros is None else micros / 1e6
    if peak is None and cpu is None:
        return None
    return Sample(peak, cpu, wall_seconds)


def stats_sample(api: docker.APIClient, container_id: str, started_at: datetime) -> Sample | None:
    """Ask the engine for one sample without its 1-2 s wait (one-shot, API >= 1.41), else None.

    Older engines only offer the blocking form, so they get no live figures (None, honestly unknown).
    """
    if docker.utils.version_lt(api.api_version, ONE_SHOT_MIN_API):
        return None
    stats: Mapping[str, Any] = api.stats(container_id, stream=False, one_shot=True)
    # Both ends of the wall time come from the engine's clock, so a skewed remote clock cancels out.
    read_at = parse_engine_time(stats.get("read")) or datetime.now(UTC)
    wall_seconds = (read_at - started_at).total_seconds()
    memory: Mapping[str, Any] = stats.get("memory_stats") or {}
    # cgroup v1 engines report the kernel's peak; v2 engines only the current usage, which is a
    # lower bound of the peak (the cache keeps the highest seen).
    peak = memory.get("max_usage") or memory.get("usage")
    cpu_usage: Mapping[str, Any] = (stats.get("cpu_stats") or {}).get("cpu_usage") or {}
    total = cpu_usage.get("total_usage")
    if not peak and not total:
        return None  # a stopped container: the engine returns zeroes, which are not measurements
    return Sample(int(peak) if peak else None, None if total is None else int(total) / 1e9, wall_seconds)


class SampleCache:
    """The last known sample per container id, bounded, shared by threads."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._samples: OrderedDict[str, Sample] = OrderedDict()

    def get(self, container_id: str) -> Sample | None:
        with self._lock:
            return self._samples.get(container_id)

    def update(self, container_id: str, sample: Sample) -> Sample:
        """Store ``sample`` merged with what was known before, and return the merged sample."""
        with self._lock:
            merged = sample.merged_with(self._samples.pop(container_id, None))
            self._samples[container_id] = merged
            while len(self._samples) > self._size:
                self._samples.popitem(last=False)
            return merged

    def forget(self, container_id: str) -> None:
        with self._lock:
            self._samples.pop(container_id, None)
