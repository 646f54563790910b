"""Build a tiny job image locally (no registry needed): scratch + Debian's static busybox."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path
from typing import Literal

import docker

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
EXAMPLE_IMAGE = "container-manager-example:busybox"
DOCKERFILE = b"""FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
USER 1001:1001
WORKDIR /tmp
"""


def is_static_elf(path: Path) -> bool:
    """Say whether ``path`` is a 64-bit ELF binary with no program interpreter (statically linked)."""
    # A dynamic binary has a PT_INTERP program header naming its loader, which a scratch image lacks.
    header = path.read_bytes()[:4096]
    if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit ELF only
        return False
    byteorder: Literal["little", "big"] = "little" if header[5] == 1 else "big"
    phoff = int.from_bytes(header[0x20:0x28], byteorder)
    phentsize = int.from_bytes(header[0x36:0x38], byteorder)
    phnum = int.from_bytes(header[0x38:0x3A], byteorder)
    pt_interp = 3
    return all(
        int.from_bytes(header[phoff + i * phentsize : phoff + i * phentsize + 4], byteorder) != pt_interp
        for i in range(phnum)
    )


def find_static_busybox() -> Path:
    """Return the static busybox binary, or explain how to get one."""
    for candidate in (*BUSYBOX_CANDIDATES, shutil.which("busybox")):
        if candidate and Path(candidate).is_file() and is_static_elf(Path(candidate)):
            return Path(candidate)
    raise FileNotFoundError("No static busybox found: install it with `apt-get install busybox-static`.")


def build_image(
    client: docker.DockerClient, tag: str = EXAMPLE_IMAGE, *, labels: dict[str, str] | None = None
) -> str:
    """Build ``tag`` unless it exists; return the tag."""
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data, mode in (
            ("Dockerfile", DOCKERFILE, 0o644),
            ("busybox", find_static_busybox().read_bytes(), 0o755),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    client.images.build(
        fileobj=context, custom_context=True, tag=tag, rm=True, labels=labels or {}, timeout=300
    )
    return tag
