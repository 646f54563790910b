"""What the worker knows about each job it owns, and the reports its executor threads send back."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from container_manager.models import ContainerJob
from container_manager.states import TerminationReason
from container_manager_core.logstream import LogCapture
from container_manager_core.types import ExecutionLogs, ExecutionStatus, HostSpec, JobSpec, ResourceUsage


class StopReason:
    """Why the worker stopped a container; a stopped container's exit code is not the job's fault."""

    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


@dataclass(eq=False)
class Tracked:
    """One owned job. The main thread writes the job row; its runner thread talks to the executor.

    Fields written by one thread and read by the other are single attribute assignments, which are
    atomic in CPython, so no lock is needed.
    """

    job: ContainerJob
    host: HostSpec
    host_pk: int
    attempt: int
    pinned: bool
    spec: JobSpec | None = None  # Set when the runner must launch (or adopt) the container.
    previous_execution: str = ""  # A retried job's old container, removed before relaunching.
    execution_id: str = ""
    deadline: float | None = None  # Unix time after which the container is stopped as timed out.
    stop_reason: str = ""
    interrupted: bool = False  # The engine was unreachable while the container ran.
    abandoned: bool = False  # Another worker or a person moved the job: stop acting on it.
    sampled: bool = False  # The executor measured its usage at least once while it ran.
    # The output followed while it runs: fed by its follower thread, stored by the main thread.
    capture: LogCapture | None = None
    following: bool = False  # A follower thread reads its output live.
    output_ended: threading.Event = field(default_factory=threading.Event)  # the follower is done
    # Set by the follower when the output ended or broke (and on abandon): look at the container now.
    watch_wake: threading.Event = field(default_factory=threading.Event)
    attempt_pk: Any = None  # Its JobAttempt row (main thread only).
    tail_stored: bool = False  # Tail chunks were stored while it ran (main thread only).
    harvested: bool = False  # Its results were sent: the follower has nothing left to do.

    @property
    def pk(self) -> str:
        return str(self.job.pk)


@dataclass(frozen=True)
class Launched:
    tracked: Tracked
    execution_id: str
    adopted: bool


@dataclass(frozen=True)
class LaunchRefused:
    """The engine or the policy refused the job: failed, never retried blindly."""

    tracked: Tracked
    reason: TerminationReason
    error: str


@dataclass(frozen=True)
class HostDown:
    """The host's engine could not be reached; ``during_launch`` releases the job."""

    tracked: Tracked
    error: str
    during_launch: bool


@dataclass(frozen=True)
class HostBack:
    tracked: Tracked


@dataclass(frozen=True)
class Exited:
    tracked: Tracked
    status: ExecutionStatus
    logs: ExecutionLogs | None
    usage: ResourceUsage | None
    error: str = ""
    harvest_seconds: float | None = None  # The worker's time from seeing the exit to these results.


@dataclass(frozen=True)
class UsageSampled:
    """A usage measurement taken while the job ran, ``seconds`` after its launch."""

    tracked: Tracked
    usage: ResourceUsage
    seconds: float


@dataclass(frozen=True)
class Vanished:
    """The container is gone before it could be harvested."""

    tracked: Tracked


Report = Launched | LaunchRefused | HostDown | HostBack | Exited | Vanished | UsageSampled
