"""A new user's first run, from built wheels: follow docs/INSTALL.md literally in a fresh project.

    python scripts/journey.py WHEELS_DIR

With plain ``pip`` (not uv) in a fresh virtualenv, it installs what INSTALL.md's first install line
names, from WHEELS_DIR plus the package index, checks that the workspace's own wheels were taken
(not a same-named package from the index), runs ``django-admin startproject``, pastes INSTALL.md's
``# settings.py`` block at the end of the new ``settings.py``, then runs every ``python`` and ``bash``
block from section 2 on, in order, in that project: the Python blocks in one Django process, with
``>>>`` blocks checked by doctest, the shell blocks in the project directory. Section 1 is the install
itself and describes this repository's environment, so the journey does the install instead.

Only the standard library is needed to run it; the blocks themselves run in the new virtualenv.
"""

from __future__ import annotations

import doctest
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTALL = ROOT / "docs" / "INSTALL.md"
SETTINGS_MARKER = "# settings.py"
FIRST_SECTION_RUN = "2."
# What the install line must have taken from the built wheels, not from a same-named package elsewhere.
FROM_WHEELS = ("container-manager-django", "container-manager-core", "container-manager-docker")
STEP_TIMEOUT_SECONDS = 600


def say(message: str) -> None:
    print(f"\n=== journey: {message}", flush=True)


def run(
    argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, capture: bool = False
) -> subprocess.CompletedProcess[str]:
    print("$", " ".join(argv), flush=True)
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=capture, check=True, text=True, timeout=STEP_TIMEOUT_SECONDS
    )


def install_line() -> str:
    """Return the first ``pip install`` line of INSTALL.md's install section, without its prompt."""
    for line in INSTALL.read_text().splitlines():
        if match := re.match(r"^\$ (pip install \S+)", line):
            return match[1]
    raise SystemExit("docs/INSTALL.md has no `$ pip install ...` line")


def blocks_to_run() -> tuple[str, list[dict[str, str]]]:
    """Return INSTALL.md's settings block and the executed blocks from section 2 on, in order."""
    sys.path.insert(0, str(ROOT))
    from docs import mdscan  # the parser the documentation's own tests use (standard library only)

    settings, steps = "", []
    for block in mdscan.load("INSTALL.md").blocks:
        if block.lang not in {"python", "bash"} or not block.section.startswith(tuple("23456789")):
            continue
        if block.lang == "python" and block.text.lstrip().startswith(SETTINGS_MARKER):
            settings += block.text
            continue
        steps.append({"where": block.where, "lang": block.lang, "text": block.text})
    if not settings or not steps:
        raise SystemExit("docs/INSTALL.md lost its settings block or its steps")
    return settings, steps


def wheel_version(wheels: Path, distribution: str) -> str:
    prefix = distribution.replace("-", "_") + "-"
    for wheel in sorted(wheels.glob(f"{prefix}*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            for line in archive.read(metadata).decode().splitlines():
                if line.startswith("Version: "):
                    return line.removeprefix("Version: ")
    raise SystemExit(f"no {distribution} wheel in {wheels}")


def main(wheels: Path) -> None:
    python = os.environ.get("UV_PYTHON") or sys.executable
    settings, steps = blocks_to_run()
    work = Path(tempfile.mkdtemp(prefix="cm-journey-"))
    try:
        venv, project = work / "venv", work / "project"
        say(f"a fresh virtualenv with {python}")
        run([python, "-m", "venv", str(venv)])
        line = install_line()
        say(f"{line}, from {wheels} and the index")
        pip, python_c = [str(venv / "bin" / "python"), "-m", "pip"], [str(venv / "bin" / "python"), "-c"]
        run([*pip, "install", "--find-links", str(wheels), *shlex.split(line)[2:]])
        for distribution in FROM_WHEELS:
            installed = run(
                [*python_c, f"import importlib.metadata as m; print(m.version({distribution!r}))"],
                capture=True,
            ).stdout.strip()
            expected = wheel_version(wheels, distribution)
            if installed != expected:
                raise SystemExit(
                    f"pip installed {distribution} {installed}, not the built wheel's {expected}"
                )
        say("django-admin startproject mysite")
        project.mkdir()
        run([str(venv / "bin" / "django-admin"), "startproject", "mysite", str(project)])
        settings_file = project / "mysite" / "settings.py"
        settings_file.write_text(settings_file.read_text() + "\n\n# From docs/INSTALL.md\n" + settings)
        say(f"{len(steps)} blocks of docs/INSTALL.md in the project")
        script = work / "steps.json"
        script.write_text(json.dumps(steps))
        env = {
            **os.environ,
            "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "DJANGO_SETTINGS_MODULE": "mysite.settings",
            "PYTHONPATH": str(project),
            "VIRTUAL_ENV": str(venv),
            "PYTHONUNBUFFERED": "1",
        }
        run([str(venv / "bin" / "python"), __file__, "--run-steps", str(script)], cwd=project, env=env)
        say("passed: INSTALL.md works as written in a fresh project installed from the wheels")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_steps(script: Path) -> None:
    """Inside the project's virtualenv: run the blocks in one Django process, in order."""
    import django

    django.setup()
    namespace: dict[str, object] = {"__name__": "__main__"}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    parser = doctest.DocTestParser()
    for step in json.loads(script.read_text()):
        where, text = step["where"], step["text"]
        print(f"\n--- {where} ({step['lang']})\n{text}", flush=True)
        if step["lang"] == "bash":
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", text],
                text=True,
                capture_output=True,
                timeout=STEP_TIMEOUT_SECONDS,
                check=False,
            )
            print(result.stdout + result.stderr, end="", flush=True)
            if result.returncode:
                raise SystemExit(f"{where}: exited {result.returncode}")
        elif text.lstrip().startswith(">>>"):
            test = parser.get_doctest(text, namespace, where, str(INSTALL), 0)
            if runner.run(test, clear_globs=False).failed:
                raise SystemExit(f"{where}: its output differs from the document's")
        else:
            exec(compile(text, where, "exec"), namespace)  # noqa: S102 - the documentation's own example
    # What a person does next in any new project: both need the whole `migrate`, not the app's alone.
    from django.core.management import call_command
    from django.db import connections

    print("\n--- then: manage.py check, createsuperuser", flush=True)
    call_command("check", fail_level="WARNING")
    os.environ["DJANGO_SUPERUSER_PASSWORD"] = "journey-only-password"  # noqa: S105 - a throwaway project
    call_command("createsuperuser", interactive=False, username="admin", email="admin@example.com")

    connections.close_all()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--run-steps":
        run_steps(Path(sys.argv[2]))
    elif len(sys.argv) == 2:
        main(Path(sys.argv[1]).resolve())
    else:
        raise SystemExit(__doc__)
