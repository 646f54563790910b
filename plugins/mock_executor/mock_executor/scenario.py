"""How a job tells the mock executor what to do: environment variables with a MOCK_ prefix."""

from __future__ import annotations

from collections.abc import Mapping

import attrs


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@attrs.frozen
class Scenario:
    """The outcome the mock plays for one job; every field has a documented MOCK_* variable."""

    stdout: str = ""  # MOCK_STDOUT
    stderr: str = ""  # MOCK_STDERR
    exit_code: int = 0  # MOCK_EXIT_CODE
    duration: float = 0.0  # MOCK_DURATION (seconds)
    oom: bool = False  # MOCK_OOM: exit 137 with the OOM flag set
    launch_error: str | None = None  # MOCK_LAUNCH_ERROR: launch fails with this message
    image_pull_error: str | None = None  # MOCK_IMAGE_PULL_ERROR: launch fails as an image pull failure
    peak_memory_bytes: int = 4 * 1024 * 1024  # MOCK_PEAK_MEMORY_BYTES
    cpu_percent: float = 1.0  # MOCK_CPU_PERCENT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Scenario:
        """Read a scenario from a job's environment; malformed numbers are a clear error."""
        try:
            return cls(
                stdout=env.get("MOCK_STDOUT", ""),
                stderr=env.get("MOCK_STDERR", ""),
                exit_code=int(env.get("MOCK_EXIT_CODE", "0")),
                duration=float(env.get("MOCK_DURATION", "0")),
                oom=_flag(env.get("MOCK_OOM")),
                launch_error=env.get("MOCK_LAUNCH_ERROR") or None,
                image_pull_error=env.get("MOCK_IMAGE_PULL_ERROR") or None,
                peak_memory_bytes=int(env.get("MOCK_PEAK_MEMORY_BYTES", str(4 * 1024 * 1024))),
                cpu_percent=float(env.get("MOCK_CPU_PERCENT", "1.0")),
            )
        except ValueError as exc:
            raise ValueError(f"Invalid MOCK_* setting in the job environment: {exc}.") from exc
