"""The published family: five distributions whose metadata is a proper release artefact.

The install from built wheels is proven end to end by ``scripts/journey.py`` and
``scripts/check-plugin-without-django`` in CI; these tests read the declarations those builds use.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
FAMILY = {
    "container-manager-core": ROOT / "packages" / "core",
    "container-manager-django": ROOT / "packages" / "django",
    "container-manager-docker": ROOT / "plugins" / "docker_executor",
    "container-manager-cloudrun": ROOT / "plugins" / "cloudrun_executor",
    "container-manager-mock": ROOT / "plugins" / "mock_executor",
}
PLUGINS = ("container-manager-docker", "container-manager-cloudrun", "container-manager-mock")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


def project(name: str) -> dict[str, Any]:
    data: dict[str, Any] = tomllib.loads((FAMILY[name] / "pyproject.toml").read_text())
    return data


def requirements(name: str, extra: str | None = None) -> dict[str, Requirement]:
    meta = project(name)["project"]
    listed = meta["dependencies"] if extra is None else meta["optional-dependencies"][extra]
    return {Requirement(text).name: Requirement(text) for text in listed}


def test_the_workspace_members_are_exactly_the_family() -> None:
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "project" not in root, "the workspace root must not be a distribution of its own"
    members = {project(name)["project"]["name"]: path for name, path in FAMILY.items()}
    assert members == FAMILY
    found = {
        p.parent
        for pattern in root["tool"]["uv"]["workspace"]["members"]
        for p in ROOT.glob(f"{pattern}/pyproject.toml")
    }
    assert found == set(FAMILY.values())


def test_one_version_for_the_family() -> None:
    versions = {name: project(name)["project"]["version"] for name in FAMILY}
    assert len(set(versions.values())) == 1, versions


@pytest.mark.parametrize("name", FAMILY)
def test_release_metadata(name: str) -> None:
    meta = project(name)["project"]
    assert meta["requires-python"] == ">=3.12"
    assert meta["license"] == "MIT"
    for license_file in meta["license-files"]:
        assert (FAMILY[name] / license_file).read_text() == (ROOT / "LICENSE").read_text()
    assert (FAMILY[name] / meta["readme"]).read_text().startswith(f"# {name}\n")
    assert len(meta["description"]) <= 200
    assert "Programming Language :: Python :: 3.12" in meta["classifiers"]
    assert {"Homepage", "Source", "Issues", "Documentation"} <= set(meta["urls"])
    sdist = project(name)["tool"]["hatch"]["build"]["targets"]["sdist"]["only-include"]
    wheel = project(name)["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert sorted(sdist) == sorted([*wheel, meta["readme"], *meta["license-files"]]), (
        "the sdist holds only what builds it"
    )


def test_the_app_declares_the_django_series_it_supports() -> None:
    meta = project("container-manager-django")["project"]
    django = requirements("container-manager-django")["django"]
    for series in ("5.2", "6.0"):
        assert f"Framework :: Django :: {series}" in meta["classifiers"]
        assert Version(f"{series}.1") in django.specifier
    assert Version("5.1") not in django.specifier


def test_the_core_never_depends_on_django() -> None:
    assert set(requirements("container-manager-core")) == {"attrs", "pluggy"}


@pytest.mark.parametrize("name", PLUGINS)
def test_plugins_depend_on_a_compatible_core_alone(name: str) -> None:
    needs = requirements(name)
    assert "django" not in needs
    assert "container-manager-django" not in needs
    core = needs["container-manager-core"]
    version = Version(project("container-manager-core")["project"]["version"])
    assert version in core.specifier
    assert Version(f"{version.major}.{version.minor + 1}.0") not in core.specifier, (
        "the core pin is open-ended"
    )


@pytest.mark.parametrize("extra", ["docker", "cloudrun", "mock"])
def test_the_apps_extras_pin_compatible_plugin_versions(extra: str) -> None:
    (pin,) = requirements("container-manager-django", extra).values()
    plugin_version = Version(project(pin.name)["project"]["version"])
    assert pin.name == f"container-manager-{extra}"
    assert plugin_version in pin.specifier
    assert Version(f"{plugin_version.major}.{plugin_version.minor + 1}.0") not in pin.specifier


@pytest.mark.parametrize("name", FAMILY)
def test_long_description_links_work_on_an_index_page(name: str) -> None:
    """An index page has no repository around it: links are absolute, and links into the repository exist."""
    meta = project(name)["project"]
    source = meta["urls"]["Source"]
    for target in MARKDOWN_LINK.findall((FAMILY[name] / meta["readme"]).read_text()):
        assert target.startswith("https://"), (
            f"{name}'s README links {target!r}, which breaks on an index page"
        )
        if target.startswith(f"{source}/"):
            path = re.sub(r"^(blob|tree)/main/", "", target.removeprefix(f"{source}/")).split("#")[0]
            assert (ROOT / path).exists(), f"{name}'s README links {target!r}: no {path} in the repository"
