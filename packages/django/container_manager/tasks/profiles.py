"""Queue profiles: the ``TASKS`` backend's ``OPTIONS`` read into one job shape per queue.

``OPTIONS`` holds defaults for every queue (``image``, ``host``, limits...) and ``queues`` holds
each queue's own; a queue's profile is the defaults updated by its entry. The keys are
``create_job``'s own, so a profile is checked by the very function that checks a job
(``profile_errors``), at start-up (the backend's system check) and again at each enqueue.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from django.core.exceptions import ValidationError

# create_job's keywords a profile may set (``host`` is create_job's ``docker_host``).
JOB_KEYS: Final = frozenset(
    {
        "image",
        "host",
        "executor_type",
        "memory_limit",
        "cpu_limit",
        "timeout_seconds",
        "pids_limit",
        "network_configuration",
        "max_retries",
        "user",
    }
)
# Keys about the container's Python rather than the job.
RUNNER_KEYS: Final = frozenset({"python", "settings_module"})
PROFILE_KEYS: Final = JOB_KEYS | RUNNER_KEYS
RUNNER_MODULE: Final = "container_manager.tasks.run"


@dataclass(frozen=True)
class QueueProfile:
    """How one queue's tasks run: the job's fields and the runner's interpreter and settings."""

    queue: str
    options: Mapping[str, Any]

    @property
    def python(self) -> str:
        return str(self.options.get("python", "python3"))

    def command(self) -> list[str]:
        return [self.python, "-m", RUNNER_MODULE]

    def environment(self) -> dict[str, str]:
        settings_module = self.options.get("settings_module")
        return {"DJANGO_SETTINGS_MODULE": str(settings_module)} if settings_module else {}

    def job_arguments(self, *, with_host: bool = True) -> dict[str, Any]:
        """Return the profile as create_job keywords (without the host, for a check without a database)."""
        arguments = {key: value for key, value in self.options.items() if key in JOB_KEYS - {"host"}}
        if with_host and self.options.get("host"):
            arguments["docker_host"] = self.options["host"]
        return arguments


def read_profiles(
    queues: Collection[str], options: Mapping[str, Any]
) -> tuple[dict[str, QueueProfile], list[str]]:
    """Return each queue's profile, and what is wrong with the options' shape (empty when nothing)."""
    problems: list[str] = []
    if not isinstance(options, Mapping):
        return {}, [f"OPTIONS must be a mapping, got {type(options).__name__}."]
    per_queue = options.get("queues", {})
    if not isinstance(per_queue, Mapping):
        problems.append(
            f"OPTIONS['queues'] must map queue names to profiles, got {type(per_queue).__name__}."
        )
        per_queue = {}
    defaults = {key: value for key, value in options.items() if key != "queues"}
    problems += _unknown_keys("OPTIONS", defaults)
    for name in sorted(set(per_queue) - set(queues)):
        problems.append(
            f"OPTIONS['queues'] has a profile for {name!r}, which is not in QUEUES {sorted(queues)!r}."
        )
    profiles = {}
    for queue in sorted(queues):
        own = per_queue.get(queue, {})
        if not isinstance(own, Mapping):
            problems.append(f"OPTIONS['queues'][{queue!r}] must be a mapping, got {type(own).__name__}.")
            own = {}
        problems += _unknown_keys(f"OPTIONS['queues'][{queue!r}]", own)
        merged = {**defaults, **own}
        if not merged.get("image"):
            problems.append(f"Queue {queue!r} has no image: set OPTIONS['image'] or the queue's own.")
        profiles[queue] = QueueProfile(queue, {k: v for k, v in merged.items() if k in PROFILE_KEYS})
    return profiles, problems


def _unknown_keys(where: str, options: Mapping[str, Any]) -> list[str]:
    unknown = sorted(str(key) for key in set(options) - PROFILE_KEYS)
    if not unknown:
        return []
    return [f"{where} has unknown keys {unknown!r}; a profile takes {sorted(PROFILE_KEYS)!r}."]


def profile_errors(profile: QueueProfile, *, with_host: bool = True) -> list[str]:
    """Return every reason create_job would refuse the queue's jobs (the same checks, the same policy).

    Without the host, no host is looked up by name (the start-up check's way); create_job's
    placement rule still reads the hosts, and a DatabaseError from it is the caller's to handle.
    """
    from container_manager.models import ContainerJob

    try:
        ContainerJob.objects.create_job(
            command=profile.command(),
            environment_vars=profile.environment(),
            commit=False,
            **profile.job_arguments(with_host=with_host),
        )
    except ValidationError as exc:
        return [f"Queue {profile.queue!r}: {message}" for message in _messages(exc)]
    except TypeError as exc:
        return [f"Queue {profile.queue!r}: {exc}"]
    return []


def _messages(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [f"{field}: {message}" for field, errors in exc.message_dict.items() for message in errors]
    return list(exc.messages)
