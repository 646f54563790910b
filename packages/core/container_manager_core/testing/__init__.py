"""The contract test kit every executor plugin runs against itself.

Subclass :class:`ExecutorContract` in your plugin's tests and provide two fixtures:

- ``contract_host``: the :class:`~container_manager_core.types.HostSpec` to run on;
- ``contract_job``: a callable ``(*, stdout="", stderr="", exit_code=0, duration=0.0) -> JobSpec``
  whose job prints ``stdout`` to standard output and ``stderr`` to standard error, runs for about
  ``duration`` seconds and exits with ``exit_code``. Each call must give a new ``job_id``.

The kit talks to the plugin only through :class:`~container_manager_core.plugins.PluginManager`, so it
tests the installed distribution as users get it (entry point, executor registration, policy hooks).
"""

from __future__ import annotations

from container_manager_core.testing.contract import ExecutorContract, JobFactory, exited_status

__all__ = ["ExecutorContract", "JobFactory", "exited_status"]
