"""The Docker plugin's registry-free test image: the static-ELF check and the command's error paths.

No engine is needed here; tests/integration/docker/test_test_image.py builds and runs the real image.
"""

from __future__ import annotations

import importlib.metadata
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from docker_executor import test_image
from docker_executor.test_image import DEFAULT_TAG, find_static_busybox, is_static_elf, main

PT_LOAD, PT_INTERP, PT_DYNAMIC = 1, 3, 2
ET_REL, ET_EXEC = 1, 2


def elf(
    program_headers: tuple[int, ...],
    *,
    bits: int = 64,
    byteorder: str = "little",
    e_type: int = ET_EXEC,
    phoff: int | None = None,
) -> bytes:
    """Return a minimal ELF file: its header and a program header table with entries of these types."""
    order = "<" if byteorder == "little" else ">"
    ident = b"\x7fELF" + bytes([1 if bits == 32 else 2, 1 if byteorder == "little" else 2, 1]) + bytes(9)
    if bits == 64:
        ehsize, phentsize = 64, 56
        phoff = ehsize if phoff is None else phoff
        fields = struct.pack(
            f"{order}HHIQQQIHHHHHH", e_type, 62, 1, 0x401000, phoff, 0, 0, ehsize, phentsize,
            len(program_headers), 64, 0, 0,
        )  # fmt: skip
        entries = [
            struct.pack(f"{order}IIQQQQQQ", kind, 5, 0, 0, 0, 0, 0, 0x1000) for kind in program_headers
        ]
    else:
        ehsize, phentsize = 52, 32
        phoff = ehsize if phoff is None else phoff
        fields = struct.pack(
            f"{order}HHIIIIIHHHHHH", e_type, 3, 1, 0x8048000, phoff, 0, 0, ehsize, phentsize,
            len(program_headers), 40, 0, 0,
        )  # fmt: skip
        entries = [
            struct.pack(f"{order}IIIIIIII", kind, 0, 0, 0, 0, 0, 5, 0x1000) for kind in program_headers
        ]
    header = ident + fields
    assert len(header) == ehsize
    return header.ljust(phoff, b"\0") + b"".join(entries) + b"\0" * 64


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    path.chmod(0o755)
    return path


# --- the static-ELF check --------------------------------------------------------------------------


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_a_64_bit_executable_without_an_interpreter_is_static(tmp_path: Path, byteorder: str):
    assert is_static_elf(write(tmp_path, "bb", elf((PT_LOAD, PT_LOAD), byteorder=byteorder)))


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_a_program_interpreter_means_dynamically_linked(tmp_path: Path, byteorder: str):
    headers = (PT_LOAD, PT_INTERP, PT_LOAD, PT_DYNAMIC)
    assert not is_static_elf(write(tmp_path, "bb", elf(headers, byteorder=byteorder)))


def test_an_interpreter_listed_past_the_first_4_kib_is_still_found(tmp_path: Path):
    # A check that read a fixed 4 KiB saw no program headers there and called this binary static.
    assert not is_static_elf(write(tmp_path, "bb", elf((PT_LOAD, PT_INTERP), phoff=8192)))


def test_32_bit_headers_are_read_at_their_own_offsets(tmp_path: Path):
    # An armhf or i386 busybox-static is static too; reading it with 64-bit offsets gives garbage.
    assert is_static_elf(write(tmp_path, "static32", elf((PT_LOAD,), bits=32)))
    assert not is_static_elf(write(tmp_path, "dynamic32", elf((PT_INTERP, PT_LOAD), bits=32)))


def test_an_object_file_with_nothing_to_load_is_no_executable(tmp_path: Path):
    assert not is_static_elf(write(tmp_path, "bb.o", elf((), e_type=ET_REL)))
    assert not is_static_elf(write(tmp_path, "bb", elf(())))


@pytest.mark.parametrize(
    "data",
    [b'#!/bin/sh\nexec busybox "$@"\n', b"", b"\x7fELF", b"MZ" + bytes(200), elf((PT_LOAD,))[:70]],
    ids=["script", "empty", "ident-only", "not-elf", "truncated-table"],
)
def test_anything_else_is_not_a_static_elf(tmp_path: Path, data: bytes):
    assert not is_static_elf(write(tmp_path, "bb", data))


def test_a_missing_or_unreadable_path_is_not_a_static_elf(tmp_path: Path):
    assert not is_static_elf(tmp_path / "absent")
    assert not is_static_elf(tmp_path)


# --- finding busybox --------------------------------------------------------------------------------


@pytest.fixture
def no_busybox_here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Hide every busybox of this machine: no default candidates, and a PATH with nothing on it."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setattr(test_image, "BUSYBOX_CANDIDATES", ())
    monkeypatch.setenv("PATH", str(empty))
    return empty


def test_an_explicit_static_busybox_is_taken_as_given(tmp_path: Path, no_busybox_here: Path):
    busybox = write(tmp_path, "my-busybox", elf((PT_LOAD,)))
    assert find_static_busybox(busybox) == busybox


def test_busybox_static_on_path_is_found_under_alpines_name(no_busybox_here: Path):
    # Alpine's busybox-static installs /bin/busybox.static; its /bin/busybox is linked against musl.
    write(no_busybox_here, "busybox", elf((PT_INTERP, PT_LOAD)))
    static = write(no_busybox_here, "busybox.static", elf((PT_LOAD,)))
    assert find_static_busybox() == static


def test_a_dynamic_busybox_alone_is_named_in_the_error(no_busybox_here: Path):
    dynamic = write(no_busybox_here, "busybox", elf((PT_INTERP, PT_LOAD)))
    with pytest.raises(FileNotFoundError, match="busybox-static") as caught:
        find_static_busybox()
    assert f"{dynamic} is dynamically linked" in str(caught.value)


# --- the command --------------------------------------------------------------------------------------


class FakeImages:
    """An engine's image store with nothing in it, that records every build asked of it."""

    def __init__(self, present: bool = False) -> None:
        self.present = present
        self.builds: list[dict[str, Any]] = []

    def get(self, tag: str) -> Any:
        if not self.present:
            raise docker.errors.ImageNotFound(f"No such image: {tag}")
        return type("Image", (), {"id": "sha256:" + "1" * 64, "tags": [tag]})()

    def build(self, **kwargs: Any) -> Any:
        self.builds.append(kwargs)
        raise AssertionError("nothing may be built")


class FakeClient:
    def __init__(self, present: bool = False) -> None:
        self.images, self.closed = FakeImages(present), False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    client = FakeClient()
    monkeypatch.setattr(test_image, "connect", lambda docker_host, timeout=0: client)
    return client


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert out == "", "nothing on stdout, where scripts read the tag"
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err


def assert_says_what_to_install(message: str) -> None:
    assert "apt-get install busybox-static" in message
    assert "apk add busybox-static" in message
    assert "--busybox PATH" in message


def test_no_static_busybox_anywhere_exits_2_and_builds_nothing(
    no_busybox_here: Path, fake_engine: FakeClient, capsys: pytest.CaptureFixture[str]
):
    assert main([]) == 2
    message = one_line_error(capsys)
    assert message.startswith("container-manager-test-image: No static busybox found")
    assert_says_what_to_install(message)
    assert fake_engine.images.builds == []
    assert fake_engine.closed


def test_a_missing_busybox_path_exits_2_before_asking_any_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    # The engine address answers nothing: the bad path must be reported, not the engine.
    absent = tmp_path / "busybox"
    assert main(["--busybox", str(absent), "--docker-host", f"unix://{tmp_path}/none.sock"]) == 2
    message = one_line_error(capsys)
    assert f"{absent} does not exist" in message
    assert_says_what_to_install(message)


def test_a_dynamic_busybox_path_exits_2_and_says_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    dynamic = write(tmp_path, "busybox", elf((PT_INTERP, PT_LOAD)))
    assert main(["--busybox", str(dynamic), "--docker-host", f"unix://{tmp_path}/none.sock"]) == 2
    message = one_line_error(capsys)
    assert f"{dynamic} is dynamically linked" in message
    assert_says_what_to_install(message)


def test_rebuild_without_busybox_keeps_the_present_image(
    no_busybox_here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    client = FakeClient(present=True)
    monkeypatch.setattr(test_image, "connect", lambda docker_host, timeout=0: client)
    assert main(["--rebuild"]) == 2
    assert_says_what_to_install(one_line_error(capsys))
    assert client.images.builds == []


def test_an_image_already_present_needs_no_busybox(
    no_busybox_here: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    client = FakeClient(present=True)
    monkeypatch.setattr(test_image, "connect", lambda docker_host, timeout=0: client)
    assert main(["--tag", "mine:test"]) == 0
    out, err = capsys.readouterr()
    assert out == "mine:test\n"
    assert "already present" in err and "--rebuild" in err
    assert client.images.builds == []


def test_a_missing_engine_socket_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    url = f"unix://{tmp_path}/docker.sock"
    assert main(["--docker-host", url]) == 2
    message = one_line_error(capsys)
    assert f"No Docker Engine answers at {url}" in message


def test_a_refused_tcp_engine_exits_2(capsys: pytest.CaptureFixture[str]):
    with socket.socket() as probe:  # a port nothing listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        url = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
        assert main(["--docker-host", url]) == 2
    message = one_line_error(capsys)
    assert f"No Docker Engine answers at {url}" in message
    assert "refused" in message.lower()


def test_docker_host_is_the_default_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    url = f"unix://{tmp_path}/from-env.sock"
    monkeypatch.setenv("DOCKER_HOST", url)
    assert main([]) == 2
    assert f"No Docker Engine answers at {url}" in one_line_error(capsys)


def test_the_command_is_installed_as_a_console_script():
    scripts = importlib.metadata.entry_points(group="console_scripts")
    assert scripts["container-manager-test-image"].value == "docker_executor.test_image:main"
    assert DEFAULT_TAG == "container-manager-test:busybox"


@pytest.mark.slow
def test_python_dash_m_runs_the_same_command(tmp_path: Path):
    url = f"unix://{tmp_path}/docker.sock"
    result = subprocess.run(
        [sys.executable, "-m", "docker_executor.test_image", "--docker-host", url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"No Docker Engine answers at {url}" in result.stderr
