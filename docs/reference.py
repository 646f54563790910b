"""What the code really has, read from the code itself: the truth the documentation is checked against."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from django.core.management import get_commands, load_command_class
from django.db import models

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = (
    ROOT / "packages" / "django" / "container_manager",
    ROOT / "packages" / "core" / "container_manager_core",
    ROOT / "plugins" / "docker_executor" / "docker_executor",
    ROOT / "plugins" / "cloudrun_executor" / "cloudrun_executor",
    ROOT / "plugins" / "mock_executor" / "mock_executor",
)
POLICY = ROOT / "packages" / "core" / "container_manager_core" / "policy.py"
# The core's rules: the built-in policy, and the capability rule every executor plugin calls.
CORE_RULES = (POLICY, ROOT / "packages" / "core" / "container_manager_core" / "capabilities.py")
DOCKER_CONFIG_SOURCES = (
    ROOT / "plugins" / "docker_executor" / "docker_executor",
    ROOT / "packages" / "core" / "container_manager_core" / "policy.py",
)
# Helpers that build a Violation from a code given as their first argument, and the prefix they add.
_VIOLATION_BUILDERS = {"Violation": "", "_bad": "", "_v": "payload."}
# At least this many literal characters make a message template specific enough to match quotes.
MIN_TEMPLATE_LITERAL = 20


def source_files() -> Iterator[Path]:
    for directory in SOURCE_DIRS:
        for path in sorted(directory.rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


# Models ------------------------------------------------------------------------------------------


def models_by_name() -> dict[str, type[models.Model]]:
    from container_manager.models import ContainerJob, EnvironmentVariableTemplate, ExecutorHost

    return {m.__name__: m for m in (ContainerJob, EnvironmentVariableTemplate, ExecutorHost)}


def field_names(model: type[models.Model]) -> set[str]:
    """Return every name a query or an instance may use: fields, ``*_id`` columns, reverse relations."""
    names = {"pk"}
    for field in model._meta.get_fields():
        names.add(field.name)
        if attname := getattr(field, "attname", None):
            names.add(attname)
        if related := getattr(field, "related_name", None):
            names.add(related)
    return names


def concrete_fields(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    return [f for f in model._meta.get_fields() if isinstance(f, models.Field) and f.concrete]


def has_attribute(model: type[models.Model], name: str) -> bool:
    return name in field_names(model) or hasattr(model, name)


def create_job_parameters() -> dict[str, inspect.Parameter]:
    from container_manager.models import ContainerJob

    signature = inspect.signature(ContainerJob.objects.create_job)
    return {
        name: p for name, p in signature.parameters.items() if p.kind is not inspect.Parameter.VAR_KEYWORD
    }


def create_job_keywords() -> set[str]:
    """Return the keywords create_job accepts.

    Its ``**other`` only exists to refuse lifecycle fields with a clear error: every field a caller may
    set is a parameter already (``docker_image`` is ``image``, ``environment_overrides`` is
    ``environment_vars``), and passing one of those through ``**other`` is a TypeError.
    """
    return set(create_job_parameters())


# Settings ----------------------------------------------------------------------------------------


def settings_defaults() -> dict[str, Any]:
    from container_manager.conf import AppSettings

    return {f.name: f.default for f in dataclasses.fields(AppSettings)}


# Management commands -----------------------------------------------------------------------------


@cache
def command_options(name: str) -> tuple[frozenset[str], frozenset[str]]:
    """Return a management command's option strings (``--once``) and destinations (``once``)."""
    parser = load_command_class(get_commands()[name], name).create_parser("manage.py", name)
    flags = frozenset(s for action in parser._actions for s in action.option_strings)
    dests = frozenset(action.dest for action in parser._actions)
    return flags, dests


def console_script_options() -> frozenset[str]:
    """Return the option strings of the console scripts the plugins install (container-manager-test-image)."""
    from docker_executor.test_image import parser

    return frozenset(s for action in parser()._actions for s in action.option_strings)


def command_exists(name: str) -> bool:
    return name in get_commands()


def app_commands() -> set[str]:
    return {name for name, app in get_commands().items() if app == "container_manager"}


# Host configuration ------------------------------------------------------------------------------


_CONFIG_KEY = re.compile(r"config(?:\.get\(|,)\s*\"([a-z_]+)\"")


def docker_config_keys() -> set[str]:
    """Return every ``executor_config`` key of the Docker plugin's typed config, the one way it reads them."""
    import attrs
    from docker_executor.config import DockerHostConfig

    return {field.name for field in attrs.fields(DockerHostConfig)}


def raw_docker_config_reads() -> set[str]:
    """Return the keys read from a host's raw config mapping (by the guard's rules, the core policy)."""
    keys: set[str] = set()
    for source in DOCKER_CONFIG_SOURCES:
        for path in [source] if source.is_file() else sorted(source.rglob("*.py")):
            keys.update(_CONFIG_KEY.findall(path.read_text()))
    return keys


def cloudrun_config_keys() -> set[str]:
    from cloudrun_executor.config import KNOWN_KEYS

    return set(KNOWN_KEYS)


# Policy codes ------------------------------------------------------------------------------------


def _literal_codes() -> tuple[set[str], list[ast.JoinedStr]]:
    """Return the literal codes passed to violation builders, and the f-string codes seen."""
    codes: set[str] = set()
    templated: list[ast.JoinedStr] = []
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            prefix = _VIOLATION_BUILDERS.get(node.func.id)
            if prefix is None:
                continue
            arg = next(
                (k.value for k in node.keywords if k.arg == "code"), node.args[0] if node.args else None
            )
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                codes.add(prefix + arg.value)
            elif isinstance(arg, ast.JoinedStr) and path.name == "policy.py":
                # The core policy builds some codes from a family name (f"{code}_missing"); elsewhere an
                # f-string code is a builder passing its argument through (guard's f"payload.{code}").
                templated.append(arg)
    return codes, templated


def _generated_codes() -> set[str]:
    """Run the core policy on specs that break the templated rules, and return the codes it names."""
    from container_manager_core.policy import validate_job
    from container_manager_core.types import JobSpec, PolicyLimits

    limits = PolicyLimits()
    specs = [
        JobSpec(job_id="j", image="docker.io/library/busybox:1"),  # every limit missing
        JobSpec(
            job_id="j",
            image="docker.io/library/busybox:1",
            memory_limit_mb=10**6,
            cpu_limit=1000,
            timeout_seconds=10**7,
            pids_limit=10**6,
        ),
    ]
    return {v.code for spec in specs for v in validate_job(None, spec, limits)}


@cache
def violation_codes() -> frozenset[str]:
    """Return every violation code the core policy, the plugins and the Docker payload guard can report."""
    literal, templated = _literal_codes()
    generated = _generated_codes()
    for template in templated:
        pattern = template_regex(template)
        if pattern is None or not any(pattern.fullmatch(code) for code in generated):
            raise LookupError(
                f"No generated spec exercises the templated code {ast.unparse(template)}; extend _generated_codes."
            )
    return frozenset(literal | generated)


def core_policy_codes() -> set[str]:
    """Return the codes of the built-in (core) policy only."""
    literal: set[str] = set()
    for path in CORE_RULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Violation":
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    literal.add(arg.value)
    return literal | _generated_codes()


# Messages ----------------------------------------------------------------------------------------


def _pieces(node: ast.expr) -> list[str | None] | None:
    """Return a string expression as literal pieces and ``None`` holes, or None if it is not one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        out: list[str | None] = []
        for value in node.values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                out.append(value.value)
            else:
                out.append(None)
        return out
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _pieces(node.left), _pieces(node.right)
        if left is None and right is None:
            return None
        return (left or [None]) + (right or [None])
    return None


def template_regex(node: ast.expr) -> re.Pattern[str] | None:
    """Return a regex matching what a string expression can produce (surrounding whitespace dropped)."""
    pieces = _pieces(node)
    if pieces is None:
        return None
    if isinstance(pieces[0], str):
        pieces[0] = pieces[0].lstrip()
    if isinstance(pieces[-1], str):
        pieces[-1] = pieces[-1].rstrip()
    return re.compile("".join(".+?" if p is None else re.escape(p) for p in pieces), re.DOTALL)


@cache
def message_templates() -> tuple[re.Pattern[str], ...]:
    """Return a regex for every string literal or template in the source with enough fixed text."""
    found: dict[str, re.Pattern[str]] = {}
    for path in source_files():
        tree = ast.parse(path.read_text())
        inner: set[int] = set()
        for node in ast.walk(tree):
            # Only the outermost expression of a concatenation or f-string is a whole message.
            if isinstance(node, ast.BinOp | ast.JoinedStr) and id(node) not in inner:
                for child in ast.walk(node):
                    if child is not node:
                        inner.add(id(child))
        for node in ast.walk(tree):
            if id(node) in inner or not isinstance(node, ast.Constant | ast.JoinedStr | ast.BinOp):
                continue
            pieces = _pieces(node)
            if pieces is None or sum(len(p) for p in pieces if p) < MIN_TEMPLATE_LITERAL:
                continue
            pattern = template_regex(node)
            if pattern is not None:
                found[pattern.pattern] = pattern
    return tuple(found.values())


def printed_by_the_code(text: str) -> bool:
    """Say whether ``text`` is one of the messages the code can print."""
    return any(pattern.fullmatch(text) for pattern in message_templates())


# Logging -----------------------------------------------------------------------------------------


def logger_names() -> set[str]:
    names = set()
    for path in source_files():
        names.update(re.findall(r"getLogger\(\"([^\"]+)\"\)", path.read_text()))
    return names


def worker_events() -> set[str]:
    names = set()
    for path in source_files():
        names.update(re.findall(r"log_event\(\s*\"([a-z_]+)\"", path.read_text()))
        names.update(re.findall(r"\"(host_healthy|host_unhealthy)\"", path.read_text()))
        names.update(re.findall(r"(?:Outage\(\s*|recovered_event=)\"([a-z_]+)\"", path.read_text()))
    return names
