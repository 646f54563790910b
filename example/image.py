"""The demo's job image: the Docker plugin's registry-free busybox image, under the example's own tag.

The logic ships with the plugin (``docker_executor.test_image``, the ``container-manager-test-image``
command), so pip users get it too; this module keeps the names the demo and the tests import.
"""

from __future__ import annotations

from collections.abc import Mapping

import docker
from docker_executor import test_image
from docker_executor.test_image import (
    BUSYBOX_CANDIDATES,
    DOCKERFILE,
    find_static_busybox,
    is_static_elf,
)

__all__ = [
    "BUSYBOX_CANDIDATES",
    "DOCKERFILE",
    "EXAMPLE_IMAGE",
    "build_image",
    "find_static_busybox",
    "is_static_elf",
]

EXAMPLE_IMAGE = "container-manager-example:busybox"


def build_image(
    client: docker.DockerClient, tag: str = EXAMPLE_IMAGE, *, labels: Mapping[str, str] | None = None
) -> str:
    """Build ``tag`` unless it exists; return the tag."""
    return test_image.build_image(client, tag, labels=labels)
