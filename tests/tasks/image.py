"""Build the Python image the task tests run in, locally, with no registry; cached by content hash.

Two layers, each tagged by a hash of what went into it, so a second build finds both and does
nothing:

- the base: a Debian 12 ``minbase`` root filesystem made by ``debootstrap`` from the machine's own
  Debian source, with the C libraries CPython's extension modules link against, loaded with
  ``docker import`` (``container-manager-task-base:<hash>``);
- the image: the base plus this machine's Python 3.12 (under /opt/python), Django and its two
  dependencies, the ``container_manager`` package (for the runner) and the tests' task module,
  compiled ahead of time, run as UID 1001 (``container-manager-task:<hash>``).

``python -m tests.tasks.image`` builds what is missing and prints the image's tag
(``scripts/build-task-image`` is that command; ``.ci/run`` calls it).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASE_REPOSITORY = "container-manager-task-base"
IMAGE_REPOSITORY = "container-manager-task"
SUITE = "bookworm"
# What CPython's extension modules (ssl, ctypes, sqlite3, lzma, bz2, readline, uuid) link against.
BASE_PACKAGES = (
    "libssl3",
    "libffi8",
    "libsqlite3-0",
    "libbz2-1.0",
    "liblzma5",
    "zlib1g",
    "libexpat1",
    "libncursesw6",
    "libreadline8",
    "libuuid1",
    "ca-certificates",
)
# Parts of the standard library a task never needs; leaving them out halves the image.
STDLIB_SKIPPED = frozenset({"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "site-packages"})
# Packages from this environment's site-packages the image carries: Django and what it imports.
SITE_PACKAGES = ("django", "asgiref", "sqlparse")
# Sources copied as they are in the checkout (path in the repository, path under /opt/app).
SOURCES = (
    ("packages/django/container_manager", "container_manager"),
    ("tests/__init__.py", "tests/__init__.py"),
    ("tests/tasks/__init__.py", "tests/tasks/__init__.py"),
    ("tests/tasks/sample_tasks.py", "tests/tasks/sample_tasks.py"),
)
DOCKERFILE = """\
FROM {base}
COPY opt/ /opt/
ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    LD_LIBRARY_PATH=/opt/python/lib \\
    PYTHONPATH=/opt/app \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1
USER 1001:1001
WORKDIR /tmp
"""
BUILD_TIMEOUT = 1200


def base_tag() -> str:
    recipe = "\n".join((SUITE, "minbase", *BASE_PACKAGES, _debian_mirror()))
    return f"{BASE_REPOSITORY}:{hashlib.sha256(recipe.encode()).hexdigest()[:16]}"


def _debian_mirror() -> str:
    """Return the machine's configured Debian mirror (deb822 or one-line sources)."""
    for source in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in source.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    sources = Path("/etc/apt/sources.list")
    if sources.exists():
        for line in sources.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and "security" not in parts[1]:
                return parts[1]
    return "http://deb.debian.org/debian"


def _image_exists(tag: str) -> bool:
    found = subprocess.run(["docker", "image", "inspect", tag], capture_output=True, timeout=60, check=False)
    return found.returncode == 0


def build_base() -> str:
    """Return the base image's tag, making it with debootstrap and ``docker import`` when missing."""
    tag = base_tag()
    if _image_exists(tag):
        return tag
    if shutil.which("debootstrap") is None:
        raise SystemExit("debootstrap is missing: apt-get install debootstrap (scripts/setup does).")
    with tempfile.TemporaryDirectory(prefix="cm-task-rootfs-") as work:
        rootfs = Path(work) / "rootfs"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(rootfs),
                _debian_mirror(),
            ],
            check=True,
            timeout=BUILD_TIMEOUT,
            stdout=subprocess.DEVNULL,
        )
        for cache in ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man"):
            shutil.rmtree(rootfs / cache, ignore_errors=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", "-", tag], stdin=tar.stdout, check=True, timeout=BUILD_TIMEOUT)
        if tar.wait(timeout=60) != 0:
            raise SystemExit("tar of the debootstrap root filesystem failed")
    return tag


def _payload() -> tuple[dict[str, Path], dict[str, str]]:
    """Return what goes under the image's /opt: files (image path -> source) and symlinks (-> target).

    Listed rather than copied, so an image that already exists is found by hashing the sources.
    """
    prefix = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    files: dict[str, Path] = {f"python/bin/{version}": prefix / "bin" / version}
    links = {"python/bin/python3": version, "python/bin/python": version}
    for library in prefix.joinpath("lib").glob("libpython*.so*"):
        if library.is_symlink():
            links[f"python/lib/{library.name}"] = os.readlink(library)
        else:
            files[f"python/lib/{library.name}"] = library
    stdlib = prefix / "lib" / version
    for entry in stdlib.iterdir():
        if entry.name not in STDLIB_SKIPPED and not entry.name.startswith("config-"):
            files |= _tree(entry, f"python/lib/{version}/{entry.name}")
    site = Path(sysconfig.get_paths()["purelib"])
    for package in SITE_PACKAGES:
        files |= _tree(site / package, f"app/{package}")
    for source, destination in SOURCES:
        files |= _tree(REPO / source, f"app/{destination}")
    return files, links


def _tree(source: Path, destination: str) -> dict[str, Path]:
    """Map every file under ``source`` (or ``source`` itself) to its path under ``destination``."""
    if not source.is_dir():
        return {destination: source}
    found = {}
    for directory, dirs, names in os.walk(source):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in names:
            path = Path(directory) / name
            if not path.is_symlink():
                found[f"{destination}/{path.relative_to(source)}"] = path
    return found


def _stage(target: Path, files: dict[str, Path], links: dict[str, str]) -> None:
    """Copy the payload into ``target`` (the image's /opt), readable by the container's user."""
    for destination, source in files.items():
        into = target / destination
        into.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, into)
        into.chmod(0o755 if os.access(source, os.X_OK) else 0o644)
    for destination, link_target in links.items():
        (target / destination).symlink_to(link_target)
    for directory in (path for path in target.rglob("*") if path.is_dir() and not path.is_symlink()):
        directory.chmod(0o755)


def _compile(root: Path) -> None:
    """Compile every module, checked by hash rather than mtime.

    The root filesystem is read-only at run time: uncompiled, Django's import would be compiled
    again in every container.
    """
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j0", "--invalidation-mode", "unchecked-hash", str(root)],
        check=True,
        timeout=BUILD_TIMEOUT,
        stdout=subprocess.DEVNULL,
    )
    for path in root.rglob("__pycache__"):
        path.chmod(0o755)
        for compiled in path.iterdir():
            compiled.chmod(0o644)


def _content_hash(files: dict[str, Path], links: dict[str, str], base: str) -> str:
    digest = hashlib.sha256(base.encode())
    # The recipe too: a change to how the image is made makes a new image.
    digest.update(Path(__file__).read_bytes())
    for destination in sorted(files):
        digest.update(destination.encode() + b"\0")
        digest.update(hashlib.sha256(files[destination].read_bytes()).digest())
    for destination in sorted(links):
        digest.update(f"{destination} -> {links[destination]}".encode() + b"\0")
    return digest.hexdigest()[:16]


def build() -> str:
    """Return the task image's tag, building the base and the image when either is missing."""
    base = build_base()
    files, links = _payload()
    tag = f"{IMAGE_REPOSITORY}:{_content_hash(files, links, base)}"
    if _image_exists(tag):
        return tag
    with tempfile.TemporaryDirectory(prefix="cm-task-image-") as work:
        context = Path(work)
        _stage(context / "opt", files, links)
        _compile(context / "opt")
        (context / "Dockerfile").write_text(DOCKERFILE.format(base=base))
        subprocess.run(
            ["docker", "build", "-q", "--network", "none", "-t", tag, str(context)],
            check=True,
            timeout=BUILD_TIMEOUT,
            stdout=subprocess.DEVNULL,
        )
    return tag


if __name__ == "__main__":
    print(build())
