"""What an executor can enforce, and the one rule that refuses a job needing more.

Each executor plugin declares a :class:`Capabilities` (``capabilities: ClassVar[Capabilities]``) and
calls :func:`unenforceable` from its ``validate_job`` for its own hosts, so a job whose protections
the host's executor cannot enforce is refused by name, never run with the protection silently gone.
A host may accept named protections as unenforced where its plugin offers that opt-in (Cloud Run's
``accept_unenforced``); nothing is accepted by default.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import attrs

from container_manager_core.types import JobSpec, Violation


@attrs.frozen
class Protection:
    """One protection a job may need: its flag name, its name in words, and when a job needs it."""

    name: str
    words: str
    field: str
    needed_by: Callable[[JobSpec], bool]
    asked: Callable[[JobSpec], str]


# The protections the policy can require of a job, one per Capabilities flag, in message order.
PROTECTIONS: tuple[Protection, ...] = (
    Protection(
        "non_root_user", "a non-root user", "user", lambda j: bool(j.user), lambda j: f"user={j.user!r}"
    ),
    Protection(
        "read_only_root",
        "a read-only root filesystem",
        "read_only_root",
        lambda j: j.read_only_root,
        lambda _j: "read_only_root=True",
    ),
    Protection(
        "pids_limit",
        "a process limit",
        "pids_limit",
        lambda j: j.pids_limit is not None,
        lambda j: f"pids_limit={j.pids_limit!r}",
    ),
    Protection(
        "memory_limit",
        "a memory limit",
        "memory_limit_mb",
        lambda j: j.memory_limit_mb is not None,
        lambda j: f"memory_limit_mb={j.memory_limit_mb!r}",
    ),
    Protection(
        "cpu_limit",
        "a CPU limit",
        "cpu_limit",
        lambda j: j.cpu_limit is not None,
        lambda j: f"cpu_limit={j.cpu_limit!r}",
    ),
    Protection(
        "timeout",
        "a run-time limit",
        "timeout_seconds",
        lambda j: j.timeout_seconds is not None,
        lambda j: f"timeout_seconds={j.timeout_seconds!r}",
    ),
    Protection(
        "network_isolation",
        "network isolation",
        "network_mode",
        lambda j: j.network_mode == "none",
        lambda _j: "network_mode='none'",
    ),
    Protection(
        "tmpfs",
        "a size-capped tmpfs",
        "tmpfs",
        lambda j: bool(j.tmpfs),
        lambda j: f"tmpfs at {[m.path for m in j.tmpfs]!r}",
    ),
)
PROTECTION_NAMES: tuple[str, ...] = tuple(p.name for p in PROTECTIONS)

_flag = attrs.field(validator=attrs.validators.instance_of(bool))


@attrs.frozen(kw_only=True)
class Capabilities:
    """The protections an executor enforces, one flag each; every flag must be given, none defaults to yes."""

    non_root_user: bool = _flag
    read_only_root: bool = _flag
    pids_limit: bool = _flag
    memory_limit: bool = _flag
    cpu_limit: bool = _flag
    timeout: bool = _flag
    network_isolation: bool = _flag
    tmpfs: bool = _flag

    @classmethod
    def everything(cls) -> Capabilities:
        """Return the capabilities of an executor that enforces every protection."""
        flags: dict[str, Any] = dict.fromkeys(PROTECTION_NAMES, True)
        return cls(**flags)

    def enforces(self, protection: str) -> bool:
        """Say whether the executor enforces the protection named ``protection`` (a flag name)."""
        if protection not in PROTECTION_NAMES:
            raise ValueError(f"Unknown protection {protection!r}; known: {list(PROTECTION_NAMES)!r}.")
        return bool(getattr(self, protection))

    def unenforced(self) -> tuple[str, ...]:
        """Return the names of the protections this executor cannot enforce, in a stable order."""
        return tuple(name for name in PROTECTION_NAMES if not self.enforces(name))


def unenforceable(
    job: JobSpec,
    capabilities: Capabilities,
    executor: str,
    *,
    accepted: Collection[str] = (),
    opt_in: str | None = None,
) -> list[Violation]:
    """Return one violation per protection ``job`` needs that ``executor`` cannot enforce: the one rule.

    ``executor`` names the executor in the message ("Cloud Run"); ``accepted`` lists protections the
    host's operator accepts as unenforced; ``opt_in`` says where such an acceptance is written, for
    the message (None: the executor offers no opt-in).
    """
    found: list[Violation] = []
    for protection in PROTECTIONS:
        if not protection.needed_by(job) or capabilities.enforces(protection.name):
            continue
        if protection.name in accepted:
            continue
        remedy = f"; or list {protection.name!r} in {opt_in} to run such jobs without it" if opt_in else ""
        found.append(
            Violation(
                "executor_cannot_enforce",
                f"{executor} cannot enforce {protection.words}, which the job needs "
                f"({protection.asked(job)}); the job is refused rather than run without it. Run it on a "
                f"host whose executor enforces it{remedy}.",
                protection.field,
            )
        )
    return found
