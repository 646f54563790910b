"""Django's task API run in containers: ``ContainerTaskBackend`` and the runner its containers start.

The backend is imported on first use, not with the package: the runner
(``python -m container_manager.tasks.run``) imports this package inside the task's container,
where the app's models have no database to talk to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from container_manager.tasks.backend import ContainerTaskBackend

__all__ = ["ContainerTaskBackend"]


def __getattr__(name: str) -> Any:
    if name == "ContainerTaskBackend":
        from container_manager.tasks.backend import ContainerTaskBackend

        return ContainerTaskBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
