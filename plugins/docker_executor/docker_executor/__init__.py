"""Docker Engine executor for container-manager: hardened containers through docker-py."""

from __future__ import annotations

from docker_executor.plugin import DockerExecutor

__all__ = ["DockerExecutor"]
