"""Build a tiny job image on a Docker Engine with no registry: FROM scratch plus a static busybox.

``container-manager-test-image`` (or ``python -m docker_executor.test_image``) builds
``container-manager-test:busybox``, about 2 MB, whose user is the non-root ``1001:1001``. It needs
only a statically linked busybox on this machine and an engine to talk to: nothing is pulled, and
the build runs with no network.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import docker
import docker.errors

from docker_executor.address import DEFAULT_BASE_URL
from docker_executor.engine_errors import UNREACHABLE, explanation

DEFAULT_TAG = "container-manager-test:busybox"
PROG = "container-manager-test-image"
# Debian and Ubuntu's busybox-static install /bin/busybox. Alpine's installs /bin/busybox.static,
# because its /bin/busybox is linked against musl and cannot run in an empty image.
BUSYBOX_CANDIDATES: tuple[str, ...] = (
    "/bin/busybox",
    "/usr/bin/busybox",
    "/bin/busybox.static",
    "/usr/bin/busybox.static",
)
BUSYBOX_NAMES = ("busybox", "busybox.static")  # also looked up on PATH
INSTALL_HINT = (
    "Install one with `apt-get install busybox-static` (Debian/Ubuntu) or `apk add busybox-static` "
    "(Alpine), or pass --busybox PATH to a static busybox binary."
)
# Seconds for each engine call (docker-py's default is 60). Debian's dockerd can wedge, and then
# only a timeout gets a command back.
API_TIMEOUT = 60
# Seconds the build may go without a byte from the engine (a read timeout, not a total).
BUILD_TIMEOUT = 300
# The image has no /tmp of its own, so WORKDIR creates it as root's 0755. docs/DOCKER.md shows that
# trap with this image: a job that writes to /tmp fails. Change the image and that example changes.
DOCKERFILE = b"""FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
USER 1001:1001
WORKDIR /tmp
"""

ELF_MAGIC = b"\x7fELF"
ET_EXEC, ET_DYN = 2, 3  # ET_DYN: a static-pie busybox is static too
PT_LOAD, PT_INTERP = 1, 3
# Per ELF class (1: 32-bit, 2: 64-bit): offset and width of e_phoff, offset of e_phentsize (e_phnum follows).
PROGRAM_HEADER_FIELDS = {1: (0x1C, 4, 0x2A), 2: (0x20, 8, 0x36)}
MAX_PROGRAM_HEADER_BYTES = 1 << 16  # far beyond any real binary; bounds what a bogus header makes us read


class BusyboxNotFound(FileNotFoundError):
    """No usable static busybox; the message says what to install."""


class EngineUnreachable(Exception):
    """No Docker Engine answered; the message says why."""


@dataclass(frozen=True)
class Outcome:
    """What :func:`ensure_test_image` did: built ``tag`` (from ``busybox``) or found it present."""

    tag: str
    built: bool
    busybox: Path | None = None
    size: int | None = None


def elf_linkage(path: Path) -> Literal["static", "dynamic"] | None:
    """Say how the executable at ``path`` is linked, or None when it is no ELF executable."""
    # A dynamic binary has a PT_INTERP program header naming its loader, which a scratch image lacks.
    try:
        with path.open("rb") as binary:
            header = binary.read(64)
            if header[:4] != ELF_MAGIC or len(header) < 6 or header[4] not in PROGRAM_HEADER_FIELDS:
                return None
            order: Literal["little", "big"] = "little" if header[5] == 1 else "big"
            phoff_at, phoff_width, phentsize_at = PROGRAM_HEADER_FIELDS[header[4]]
            if len(header) < phentsize_at + 4:
                return None
            e_type = int.from_bytes(header[16:18], order)
            phoff = int.from_bytes(header[phoff_at : phoff_at + phoff_width], order)
            phentsize = int.from_bytes(header[phentsize_at : phentsize_at + 2], order)
            table_size = phentsize * int.from_bytes(header[phentsize_at + 2 : phentsize_at + 4], order)
            if (
                e_type not in (ET_EXEC, ET_DYN)
                or phentsize < 4
                or not 0 < table_size <= MAX_PROGRAM_HEADER_BYTES
            ):
                return None
            # Read the table where the header says it is: it need not be near the start of the file.
            binary.seek(phoff)
            table = binary.read(table_size)
    except OSError:
        return None
    if len(table) < table_size:
        return None
    types = {int.from_bytes(table[at : at + 4], order) for at in range(0, table_size, phentsize)}
    if PT_LOAD not in types:
        return None
    return "dynamic" if PT_INTERP in types else "static"


def is_static_elf(path: Path) -> bool:
    """Say whether ``path`` is an ELF executable (32- or 64-bit) with no program interpreter."""
    return elf_linkage(path) == "static"


def _why_unusable(path: Path) -> str:
    if not path.exists():
        return f"{path} does not exist"
    if elf_linkage(path) == "dynamic":
        return f"{path} is dynamically linked, and an image FROM scratch has no loader for it"
    return f"{path} is not a statically linked ELF executable"


def find_static_busybox(path: Path | str | None = None) -> Path:
    """Return ``path`` if it is a static busybox, else the first one found here; else say what to install."""
    if path is not None:
        given = Path(path)
        if is_static_elf(given):
            return given
        raise BusyboxNotFound(f"{_why_unusable(given)}. {INSTALL_HINT}")
    on_path = (shutil.which(name) for name in BUSYBOX_NAMES)
    seen: set[str] = set()
    unusable: list[str] = []
    for candidate in (*BUSYBOX_CANDIDATES, *(found for found in on_path if found)):
        real = os.path.realpath(candidate)  # /bin is /usr/bin on merged-/usr systems
        if real in seen or not os.path.isfile(candidate):
            continue
        seen.add(real)
        if is_static_elf(Path(candidate)):
            return Path(candidate)
        unusable.append(_why_unusable(Path(candidate)))
    searched = f"{', '.join(BUSYBOX_CANDIDATES)} or {' or '.join(BUSYBOX_NAMES)} on PATH"
    found = "".join(f"; {reason}" for reason in unusable)
    raise BusyboxNotFound(f"No static busybox found (looked at {searched}){found}. {INSTALL_HINT}")


def build_context(busybox: Path) -> io.BytesIO:
    """Return the build context, a tar of the Dockerfile and the busybox binary, in memory."""
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data, mode in (("Dockerfile", DOCKERFILE, 0o644), ("busybox", busybox.read_bytes(), 0o755)):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    return context


def ensure_test_image(
    client: docker.DockerClient,
    tag: str = DEFAULT_TAG,
    *,
    busybox: Path | str | None = None,
    rebuild: bool = False,
    labels: Mapping[str, str] | None = None,
    timeout: int = BUILD_TIMEOUT,
) -> Outcome:
    """Build ``tag`` unless the engine has it already (or ``rebuild``); say which happened.

    Every engine call is bounded: the client's own timeout, and ``timeout`` for the build. Busybox is
    found before anything is built, so without one nothing on the engine changes.
    """
    previous: str | None = None
    with contextlib.suppress(docker.errors.ImageNotFound):
        previous = client.images.get(tag).id
    if previous is not None and not rebuild:
        return Outcome(tag, built=False)
    source = find_static_busybox(busybox)
    image, _ = client.images.build(
        fileobj=build_context(source),
        custom_context=True,
        tag=tag,
        rm=True,
        forcerm=True,
        nocache=rebuild,  # the cache would hand back the very image a rebuild is meant to replace
        network_mode="none",
        labels=dict(labels or {}),
        timeout=timeout,
    )
    if previous is not None and previous != image.id:
        # The replaced image lost its tag; drop it unless a container or another tag still uses it.
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(previous)
    size = image.attrs.get("Size")
    return Outcome(tag, built=True, busybox=source, size=size if isinstance(size, int) else None)


def build_image(
    client: docker.DockerClient,
    tag: str = DEFAULT_TAG,
    *,
    labels: Mapping[str, str] | None = None,
    busybox: Path | str | None = None,
    rebuild: bool = False,
) -> str:
    """Build ``tag`` unless it exists; return the tag."""
    return ensure_test_image(client, tag, labels=labels, busybox=busybox, rebuild=rebuild).tag


def engine_url(docker_host: str | None = None) -> str:
    """Return the engine to use: ``docker_host``, else ``DOCKER_HOST``, else the local socket."""
    return docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_BASE_URL


def _chain(exc: BaseException) -> list[BaseException]:
    """Return ``exc`` and what caused it, outermost first (docker-py wraps the socket error twice)."""
    chain = [exc]
    while (nxt := chain[-1].__cause__ or chain[-1].__context__) is not None and nxt not in chain:
        chain.append(nxt)
    return chain


def _reason(exc: BaseException) -> str:
    """Return the innermost cause's own words ("Connection refused"), not docker-py's wrapping."""
    root = _chain(exc)[-1]
    if isinstance(root, OSError) and root.strerror:
        return root.strerror
    return str(root) or type(root).__name__


def connect(docker_host: str, timeout: int = API_TIMEOUT) -> docker.DockerClient:
    """Connect to the engine at ``docker_host``; TLS settings come from the environment, as in ``from_env``."""
    socket_path = docker_host.removeprefix("unix://")
    if socket_path != docker_host and not os.path.exists(socket_path):
        # Checked first: docker-py leaks the socket of a failed unix connect (docker-py #3356).
        raise EngineUnreachable(f"{socket_path} does not exist (is dockerd running?)")
    try:
        # The client asks the engine for its API version here, within ``timeout``.
        return docker.DockerClient.from_env(
            timeout=timeout, environment={**os.environ, "DOCKER_HOST": docker_host}
        )
    except docker.errors.DockerException as exc:
        if any(isinstance(cause, UNREACHABLE) for cause in _chain(exc)):
            raise EngineUnreachable(_reason(exc)) from exc
        raise


def _fail(message: str, status: int) -> int:
    sys.stderr.write(f"{PROG}: {' '.join(message.split())}\n")  # one line, whatever the engine said
    return status


def parser() -> argparse.ArgumentParser:
    """Return the command line of ``container-manager-test-image``."""
    command = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Build a tiny job image on a Docker Engine without any registry: FROM scratch, a static "
            "busybox from this machine, USER 1001:1001. Prints the tag on stdout, and on stderr "
            "whether it built the image or found it already present."
        ),
        epilog="Exit status: 0 done; 2 no static busybox, or no engine answers; 1 the build was refused.",
    )
    command.add_argument("--tag", default=DEFAULT_TAG, help="the image's tag (default: %(default)s)")
    command.add_argument(
        "--busybox",
        type=Path,
        metavar="PATH",
        help=f"a statically linked busybox (default: the first of {', '.join(BUSYBOX_CANDIDATES)}, then PATH)",
    )
    command.add_argument(
        "--docker-host",
        metavar="URL",
        help=f"the engine, unix:// or tcp:// (default: $DOCKER_HOST, else {DEFAULT_BASE_URL})",
    )
    command.add_argument("--rebuild", action="store_true", help="build again even if the tag is present")
    return command


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; return the exit status."""
    args = parser().parse_args(argv)
    url = engine_url(args.docker_host)
    try:
        # A busybox that will be needed is checked before the engine is asked anything.
        busybox = find_static_busybox(args.busybox) if args.busybox or args.rebuild else None
        client = connect(url)
        try:
            outcome = ensure_test_image(client, args.tag, busybox=busybox, rebuild=args.rebuild)
        finally:
            client.close()
    except BusyboxNotFound as exc:  # before UNREACHABLE, which holds OSError
        return _fail(str(exc), 2)
    except EngineUnreachable as exc:
        return _fail(f"No Docker Engine answers at {url}: {exc}", 2)
    except docker.errors.BuildError as exc:
        return _fail(f"Building {args.tag} failed: {exc.msg}", 1)
    except docker.errors.APIError as exc:
        return _fail(f"The Docker Engine at {url} refused: {explanation(exc)}", 1)
    except UNREACHABLE as exc:
        return _fail(f"No Docker Engine answers at {url}: {_reason(exc)}", 2)
    except docker.errors.DockerException as exc:
        return _fail(f"Docker Engine at {url}: {exc}", 1)
    if outcome.built:
        size = "" if outcome.size is None else f"{outcome.size / 1e6:.1f} MB, "
        sys.stderr.write(f"Built {outcome.tag} from {outcome.busybox} ({size}user 1001:1001).\n")
    else:
        sys.stderr.write(f"{outcome.tag} is already present; nothing built (--rebuild builds it again).\n")
    sys.stdout.write(f"{outcome.tag}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
