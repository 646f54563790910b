"""The documentation names only what exists, marks what it does not run, and lists what it must.

Examples are run by ``docs/conftest.py``; these tests check what running cannot: that every model
field, ``create_job`` keyword, setting, command and flag, host config key, violation code, hook,
signal, state transition and quoted error message in the documents exists in the code, that the
reference tables list everything the code has, and that blocks which are not run say why.
"""

# ruff: noqa: S101

from __future__ import annotations

import ast
import configparser
import inspect
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from sybil import Document as SybilDocument

from docs import mdscan, reference
from docs.harness import DocsRun, parsers
from docs.mdscan import Block, load, unquote

ROOT = Path(__file__).resolve().parent.parent
EXECUTED = {"python", "bash"}
DATA = {"text", "json", "toml", "ini", "yaml", "dockerfile", "mermaid"}
NOT_RUN_LINE = re.compile(r"^\*Not run by the test suite: .+\.\*$")
DOCKER_SECTIONS = [
    "Overview",
    "Docker daemon configuration",
    "Container configuration",
    "ExecutorHost setup",
    "Container jobs",
    "Environment management",
    "Security",
    "Monitoring",
    "Advanced",
    "Troubleshooting",
    "Best practices for production",
]
# Upper-case names in inline code that are not CONTAINER_MANAGER keys: Django settings, environment
# variables of jobs and of the process, and the names of this app's settings dict itself.
NOT_SETTINGS = {
    "CONTAINER_MANAGER",
    "INSTALLED_APPS",
    "DJANGO_SETTINGS_MODULE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "REQUESTS_CA_BUNDLE",
    "DOCKER_HOST",
    "FAKE_STDOUT",
    "FAKE_STDERR",
    "FAKE_EXIT_CODE",
    "FAKE_DURATION",
    "CM_TEST_DATABASE_URL",
    "REMOTE_ADDR",  # the request header the metrics allow-list reads
    # Variable names the secrets rule is shown on.
    "GITHUB_PAT",
    # Cloud Run's reasons for a failed Ready condition (the service's words, quoted in the docs).
    "CONTAINER_MISSING",
    "SECRETS_ACCESS_CHECK_FAILED",
}
# Options every Django command has; the command tables list only a command's own.
DJANGO_COMMON_OPTIONS = {
    "-h",
    "--help",
    "--version",
    "-v",
    "--verbosity",
    "--settings",
    "--pythonpath",
    "--traceback",
    "--no-color",
    "--force-color",
    "--skip-checks",
}
_MODEL_VARIABLES = (
    (re.compile(r"(^|_)job$"), "ContainerJob"),
    (re.compile(r"(^|_)host$"), "ExecutorHost"),
    (re.compile(r"(^|_)template$"), "EnvironmentVariableTemplate"),
)
_RELATION_MODELS = {"docker_host": "ExecutorHost", "environment_template": "EnvironmentVariableTemplate"}
_SPEC_PARAMETERS = {"job": "JobSpec", "host": "HostSpec"}
_QUERY_METHODS = {"create", "get", "filter", "exclude", "get_or_create", "update_or_create", "update"}
_COMMAND_LINE = re.compile(r"(?:manage\.py|django-admin)\s+([a-z_]+)([^\n`|#;&]*)")
_FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


# Helpers -----------------------------------------------------------------------------------------


def python_blocks() -> list[Block]:
    return [b for b in mdscan.all_blocks() if b.lang == "python"]


def parsed_python() -> Iterator[tuple[Block, ast.Module]]:
    for block in python_blocks():
        yield block, ast.parse(block.python_source, filename=block.where)


def model_of(
    node: ast.expr, specs: frozenset[str] = frozenset(), known: dict[str, str] | None = None
) -> str | None:
    """Return the class an expression holds: from its assignment, else by its name.

    ``known`` maps the names a document assigned from a model call (``slow = ...create_job(...)``).
    Names in ``specs`` are parameters of a plugin method or hook implementation: there ``job`` and
    ``host`` are the core's ``JobSpec`` and ``HostSpec``, not model instances. Other names are judged
    by their ending (``job``, ``report_job``, ``docker_host``).
    """
    if isinstance(node, ast.Name):
        if node.id in specs:
            return _SPEC_PARAMETERS[node.id]
        if known and node.id in known:
            return known[node.id]
        return next((model for pattern, model in _MODEL_VARIABLES if pattern.search(node.id)), None)
    if isinstance(node, ast.Attribute) and model_of(node.value, specs, known) in reference.models_by_name():
        return _RELATION_MODELS.get(node.attr)
    return None


def assigned_models(document: str) -> dict[str, str]:
    """Return the names a document's Python blocks bind to model instances, by their assignments."""
    models = reference.models_by_name()
    known: dict[str, str] = {}
    for block in python_blocks():
        if block.document != document:
            continue
        for node in ast.walk(ast.parse(block.python_source)):
            if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
                continue
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            func = node.value.func
            model = None
            if isinstance(func, ast.Name) and func.id in models:
                model = func.id
            elif isinstance(func, ast.Attribute) and func.attr in {
                "create",
                "create_job",
                "get",
                "duplicate",
            }:
                model = query_model(func) or ("ContainerJob" if func.attr == "duplicate" else None)
            for target in targets:
                if model is not None:
                    known[target] = model
                else:
                    known.pop(target, None)  # rebound to something else
    return known


def query_model(node: ast.expr) -> str | None:
    """Return the model of ``Model.objects...`` or ``Model`` at the root of a call chain."""
    while isinstance(node, ast.Call | ast.Attribute):
        node = node.func if isinstance(node, ast.Call) else node.value
    if isinstance(node, ast.Name) and node.id in reference.models_by_name():
        return node.id
    return None


def literal_keys(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Dict):
        return [k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    return []


def table(document: str, name: str) -> list[dict[str, str]]:
    tables = load(document).tables
    assert name in tables, f"{document} has no table marked <!-- table: {name} -->"
    return tables[name]


def first_word(cell: str) -> str:
    return unquote(cell).split()[0]


def names_in(cell: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", cell))


# Documents, languages, markers -------------------------------------------------------------------


def test_the_readme_links_every_document() -> None:
    readme = (ROOT / "README.md").read_text()
    for name in mdscan.DOCUMENTS:
        assert f"(docs/{name})" in readme, f"README.md does not link docs/{name}"


# What a reader installs: the published distributions and their extras, read from the workspace.
PIP_INSTALL = re.compile(
    r"pip install (?:-U |--upgrade )?[\"']?(?P<name>[A-Za-z0-9_.-]+)(?:\[(?P<extras>[^\]]*)\])?"
)
READMES = (
    ROOT / "README.md",
    *sorted(ROOT.glob("packages/*/README.md")),
    *sorted(ROOT.glob("plugins/*/README.md")),
)


def published_distributions() -> dict[str, set[str]]:
    """Map every distribution of the workspace to its extras."""
    found = {}
    for pyproject in (*ROOT.glob("packages/*/pyproject.toml"), *ROOT.glob("plugins/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        found[project["name"]] = set(project.get("optional-dependencies", {}))
    return found


def test_install_commands_name_published_distributions() -> None:
    """A stale or foreign name (``container-manager`` is someone else's package) never reaches a reader."""
    published = published_distributions()
    commands = []
    for path in (*(mdscan.path_of(name) for name in mdscan.DOCUMENTS), *READMES):
        for match in PIP_INSTALL.finditer(path.read_text()):
            commands.append(match)
            name, extras = match["name"], match["extras"]
            where = f"{path.relative_to(ROOT)}: {match[0]!r}"
            if name.startswith(("container-manager", "container_manager")):
                assert name in published, f"{where} names no distribution of this workspace"
                wanted = {extra.strip() for extra in (extras or "").split(",") if extra.strip()}
                assert wanted <= published[name], f"{where} asks for extras {name} does not have"
    assert any(m["name"] == "container-manager-django" for m in commands), "no document says what to install"


def test_toml_requirements_name_published_distributions() -> None:
    """A packaging example that depends on a stale or foreign name would install someone else's package."""
    from packaging.requirements import Requirement

    published = published_distributions()
    for block in mdscan.all_blocks():
        if block.lang != "toml":
            continue
        project = tomllib.loads(block.text).get("project", {})
        listed = [
            *project.get("dependencies", []),
            *(text for extra in project.get("optional-dependencies", {}).values() for text in extra),
        ]
        for text in listed:
            requirement = Requirement(text)
            if requirement.name.startswith("container-manager") and requirement.name != project.get("name"):
                assert requirement.name in published, (
                    f"{block.where}: {text!r} names no published distribution"
                )
                assert requirement.extras <= published[requirement.name], f"{block.where}: {text!r}"


def test_error_hints_name_published_distributions() -> None:
    from container_manager_core.errors import KNOWN_EXTRAS, NoExecutorPlugin

    published = published_distributions()
    for executor_type in KNOWN_EXTRAS:
        match = PIP_INSTALL.search(str(NoExecutorPlugin(executor_type)))
        assert match, executor_type
        assert match["extras"] in published[match["name"]], match[0]


def test_host_names_do_not_collide_between_documents() -> None:
    """A reader who follows INSTALL.md and then another document in one project never hits a duplicate name."""
    owners: dict[str, str] = {}
    for name in mdscan.DOCUMENTS:
        for block in load(name).blocks:
            if block.lang != "python":
                continue
            for node in ast.walk(ast.parse(block.python_source)):
                if not isinstance(node, ast.Call):
                    continue
                called = ast.unparse(node.func)
                if called not in {"ExecutorHost", "ExecutorHost.objects.create"}:
                    continue
                for keyword in node.keywords:
                    if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                        host = keyword.value.value
                        assert owners.setdefault(host, name) == name, (
                            f"host {host!r} is created by both {owners[host]} and {block.where}"
                        )
    assert owners, "no document creates a host"


def test_the_docker_guide_has_its_sections_in_order() -> None:
    sections = [title for level, title in load("DOCKER.md").headings if level == 2]
    assert sections == DOCKER_SECTIONS


@pytest.mark.parametrize("block", mdscan.all_blocks(), ids=lambda b: b.where)
def test_every_block_is_executed_or_data(block: Block) -> None:
    assert block.lang in EXECUTED | DATA | {"console"}, (
        f"{block.where}: fence language {block.lang!r}; use python/bash (run), console (not run) or a data "
        f"language ({', '.join(sorted(DATA))})"
    )
    if block.invisible:
        assert block.lang == "python"


@pytest.mark.parametrize(
    "block", [b for b in mdscan.all_blocks() if b.lang == "console"], ids=lambda b: b.where
)
def test_console_blocks_say_why_they_are_not_run(block: Block) -> None:
    assert NOT_RUN_LINE.match(block.before), (
        f"{block.where}: a console block must follow the line '*Not run by the test suite: <reason>.*', "
        f"found {block.before!r}"
    )


def test_console_blocks_show_prompts() -> None:
    for block in mdscan.all_blocks():
        if block.lang == "console":
            commands = [line for line in block.text.splitlines() if line.strip()]
            assert commands and commands[0].startswith("$ "), f"{block.where}: start commands with '$ '"


def test_json_blocks_parse() -> None:
    for block in mdscan.all_blocks():
        if block.lang == "json":
            json.loads(block.text)


def test_toml_blocks_parse() -> None:
    for block in mdscan.all_blocks():
        if block.lang == "toml":
            tomllib.loads(block.text)


def test_ini_blocks_parse() -> None:
    for block in mdscan.all_blocks():
        if block.lang == "ini":
            parser = configparser.ConfigParser(strict=False, interpolation=None)
            parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep systemd's CamelCase keys
            parser.read_string(block.text, source=block.where)
            assert parser.sections(), block.where


def test_yaml_blocks_parse_and_are_space_indented() -> None:
    for block in mdscan.all_blocks():
        if block.lang == "yaml":
            yaml.safe_load(block.text)
            for number, line in enumerate(block.text.splitlines(), start=block.line + 1):
                assert "\t" not in line, f"{block.document}:{number}: tab in YAML"
                indent = len(line) - len(line.lstrip(" "))
                assert indent % 2 == 0, f"{block.document}:{number}: odd indentation"


def test_python_blocks_parse() -> None:
    for block in python_blocks():
        compile(block.python_source, block.where, "exec", dont_inherit=True)


# Models and create_job ---------------------------------------------------------------------------


def test_model_keywords_exist() -> None:
    models = reference.models_by_name()
    create_job = reference.create_job_keywords()
    fields_of_job = {f.name for f in reference.concrete_fields(models["ContainerJob"])}
    problems = []
    for block, tree in parsed_python():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            keywords = [k for k in node.keywords if k.arg is not None]
            if isinstance(node.func, ast.Name) and node.func.id in models:
                allowed = reference.field_names(models[node.func.id])
            elif isinstance(node.func, ast.Attribute) and node.func.attr == "create_job":
                # A block that shows the refusal of a lifecycle field may pass one (create_job's
                # **other exists to refuse them); anywhere else only real parameters are allowed.
                shows_error = "Traceback (most recent call last)" in block.text
                allowed = create_job | (fields_of_job if shows_error else set())
            elif (
                isinstance(node.func, ast.Attribute)
                and node.func.attr in _QUERY_METHODS
                and (model := query_model(node.func)) is not None
            ):
                allowed = reference.field_names(models[model]) | {"defaults"}
                for keyword in keywords:
                    if keyword.arg == "defaults":
                        for key in literal_keys(keyword.value):
                            if key.split("__")[0] not in allowed:
                                problems.append(f"{block.where}: {model} has no field {key!r}")
            else:
                continue
            for keyword in keywords:
                assert keyword.arg is not None
                if keyword.arg.split("__")[0] not in allowed:
                    problems.append(f"{block.where}: {ast.unparse(node.func)}() takes no {keyword.arg!r}")
    assert not problems, "\n".join(problems)


def _spec_scopes(tree: ast.AST) -> dict[int, frozenset[str]]:
    """Map each node inside a plugin function to the parameter names that hold specs there.

    A function with ``job`` or ``host`` parameters is a plugin method or hook implementation (specs),
    unless it also takes ``sender``: then it is a signal receiver, and ``job`` is a ContainerJob.
    """
    scopes: dict[int, frozenset[str]] = {}
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef):
            continue
        names = {a.arg for a in (*function.args.args, *function.args.kwonlyargs)}
        if "sender" in names:
            continue
        specs = frozenset(names & set(_SPEC_PARAMETERS))
        if specs:
            for child in ast.walk(function):
                scopes[id(child)] = specs
    return scopes


def _attribute_uses(tree: ast.AST, known: dict[str, str] | None = None) -> Iterator[tuple[str, str]]:
    scopes = _spec_scopes(tree)
    for child in ast.walk(tree):
        if isinstance(child, ast.Attribute):
            kind = model_of(child.value, scopes.get(id(child), frozenset()), known)
            if kind is not None:
                yield kind, child.attr


def _has_attribute(kind: str, attr: str) -> bool:
    from container_manager_core.types import HostSpec, JobSpec

    specs = {"JobSpec": JobSpec, "HostSpec": HostSpec}
    if kind in specs:
        cls = specs[kind]
        return attr in {f.name for f in attrs.fields(cls)} or hasattr(cls, attr)
    return reference.has_attribute(reference.models_by_name()[kind], attr)


def test_model_attributes_exist() -> None:
    problems = []
    known = {name: assigned_models(name) for name in mdscan.DOCUMENTS}
    for block, tree in parsed_python():
        for kind, attr in _attribute_uses(tree, known[block.document]):
            if not _has_attribute(kind, attr):
                problems.append(f"{block.where}: {kind} has no attribute {attr!r}")
    for name in mdscan.DOCUMENTS:
        for code in load(name).inline_code():
            try:
                expression = ast.parse(code.removesuffix("()"), mode="eval")
            except SyntaxError:
                continue
            for kind, attr in _attribute_uses(expression):
                if not _has_attribute(kind, attr):
                    problems.append(f"{name}: `{code}`: {kind} has no attribute {attr!r}")
    assert not problems, "\n".join(problems)


def test_inline_keywords_exist() -> None:
    """Inline ``name=value`` spans name a create_job parameter, a field or a host config key.

    Only spans whose value is a Python literal or ``...`` count as keyword arguments; ``event=claimed``
    (a log field) or ``mode=1777,noexec`` (mount options) are other syntaxes.
    """
    from container_manager_core.types import HostSpec, JobSpec

    models = reference.models_by_name()
    known = (
        reference.create_job_keywords()
        | set().union(*(reference.field_names(m) for m in models.values()))
        | {f.name for cls in (JobSpec, HostSpec) for f in attrs.fields(cls)}
        | reference.docker_config_keys()
        | reference.cloudrun_config_keys()
    )
    problems: list[str] = []
    for name in mdscan.DOCUMENTS:
        for code in load(name).inline_code():
            if not re.match(r"^[a-z_]+=(\.\.\.|[\"'\[{(0-9]|True\b|False\b|None\b)", code):
                continue
            try:
                call = ast.parse(f"f({code})", mode="eval").body
            except SyntaxError:
                continue
            assert isinstance(call, ast.Call)
            problems.extend(f"{name}: `{code}`" for k in call.keywords if k.arg not in known)
    assert not problems, "unknown keywords:\n" + "\n".join(problems)


@pytest.mark.parametrize("model_name", ["ExecutorHost", "EnvironmentVariableTemplate", "ContainerJob"])
def test_field_tables_list_every_field(model_name: str) -> None:
    model = reference.models_by_name()[model_name]
    documented = set().union(*(names_in(row["Field"]) for row in table("API.md", f"fields {model_name}")))
    actual = {f.name for f in reference.concrete_fields(model) if not f.auto_created}
    assert documented == actual, f"missing: {actual - documented}, not fields: {documented - actual}"


def test_create_job_table_matches_the_signature() -> None:
    parameters = reference.create_job_parameters()
    rows = {unquote(row["Parameter"]): row for row in table("API.md", "create_job")}
    assert set(rows) == set(parameters)
    for name, parameter in parameters.items():
        default = unquote(rows[name]["Default"])
        if parameter.default is inspect.Parameter.empty:
            assert default == "required", name
        else:
            assert ast.literal_eval(default) == parameter.default, name


# Settings ----------------------------------------------------------------------------------------


def documented_settings() -> Iterator[tuple[str, str]]:
    for block, tree in parsed_python():
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "CONTAINER_MANAGER" for t in node.targets
            ):
                yield from ((block.where, key) for key in literal_keys(node.value))
            if isinstance(node, ast.keyword) and node.arg == "CONTAINER_MANAGER":
                yield from ((block.where, key) for key in literal_keys(node.value))
    for name in mdscan.DOCUMENTS:
        document = load(name)
        for key in re.findall(r"CONTAINER_MANAGER\[[\"']([A-Za-z_]+)[\"']\]", document.text):
            yield name, key
        for code in document.inline_code():
            if re.fullmatch(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+", code) and code not in NOT_SETTINGS:
                yield name, code


def test_settings_keys_exist() -> None:
    known = reference.settings_defaults()
    unknown = [f"{where}: {key}" for where, key in documented_settings() if key not in known]
    assert not unknown, "not CONTAINER_MANAGER keys (add real non-settings to NOT_SETTINGS):\n" + "\n".join(
        unknown
    )


def test_settings_table_lists_every_key_with_its_default() -> None:
    defaults = reference.settings_defaults()
    rows = {unquote(row["Key"]): row for row in table("API.md", "settings")}
    assert set(rows) == set(defaults)
    for key, default in defaults.items():
        assert ast.literal_eval(unquote(rows[key]["Default"])) == default, key


# Commands ----------------------------------------------------------------------------------------


def command_mentions() -> Iterator[tuple[str, str, list[str]]]:
    """Yield (where, command, flags) for every ``manage.py <command> ...`` in code and prose."""
    for block in mdscan.all_blocks():
        if block.lang in {"bash", "console", "ini", "text"}:
            for match in _COMMAND_LINE.finditer(block.text):
                yield block.where, match.group(1), _FLAG.findall(match.group(2))
    for name in mdscan.DOCUMENTS:
        for code in load(name).inline_code():
            for match in _COMMAND_LINE.finditer(code):
                yield name, match.group(1), _FLAG.findall(match.group(2))


def test_commands_and_flags_exist() -> None:
    problems: list[str] = []
    for where, command, mentioned in command_mentions():
        if not reference.command_exists(command):
            problems.append(f"{where}: no management command {command!r}")
            continue
        known, _ = reference.command_options(command)
        problems.extend(f"{where}: {command} has no {flag}" for flag in mentioned if flag not in known)
    for block, tree in parsed_python():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "call_command"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                command = str(node.args[0].value)
                if not reference.command_exists(command):
                    problems.append(f"{block.where}: no management command {command!r}")
                    continue
                flags, dests = reference.command_options(command)
                # call_command itself takes stdout and stderr for the command's output.
                accepted = dests | {f.lstrip("-").replace("-", "_") for f in flags} | {"stdout", "stderr"}
                problems.extend(
                    f"{block.where}: {command} takes no {k.arg!r}"
                    for k in node.keywords
                    if k.arg is not None and k.arg not in accepted
                )
    assert not problems, "\n".join(problems)


def test_bare_flags_belong_to_a_documented_command() -> None:
    commands = {command for _, command, _ in command_mentions()} | reference.app_commands()
    known = (
        set().union(*(reference.command_options(c)[0] for c in commands)) | reference.console_script_options()
    )
    for name in mdscan.DOCUMENTS:
        for code in load(name).inline_code():
            if not code.startswith("--"):
                continue  # other tools' flags (uv, docker, pip) appear inside longer commands
            for flag in _FLAG.findall(code):
                assert flag in known, f"{name}: `{code}`: no documented command has {flag}"


@pytest.mark.parametrize("command", sorted(reference.app_commands()))
def test_command_tables_list_every_option(command: str) -> None:
    flags, _ = reference.command_options(command)
    own = {f for f in flags if f not in DJANGO_COMMON_OPTIONS}
    documented = {first_word(row["Flag"]) for row in table("API.md", f"command {command}")}
    assert documented == own


# Host configuration ------------------------------------------------------------------------------


def documented_config_keys() -> Iterator[tuple[str, str, str]]:
    """Yield (where, executor type, key) for each key of an ``executor_config`` dict literal."""
    for block, tree in parsed_python():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            keywords = {k.arg: k.value for k in node.keywords if k.arg}
            config = keywords.get("executor_config")
            if config is None:
                continue
            kind = keywords.get("executor_type")
            executor = kind.value if isinstance(kind, ast.Constant) else "docker"
            yield from ((block.where, str(executor), key) for key in literal_keys(config))


def test_host_config_keys_exist() -> None:
    known = {"docker": reference.docker_config_keys(), "cloudrun": reference.cloudrun_config_keys()}
    problems = [
        f"{where}: {executor} hosts read no {key!r}"
        for where, executor, key in documented_config_keys()
        if key not in known.get(executor, set())
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("executor", ["docker", "cloudrun"])
def test_host_config_tables_list_every_key(executor: str) -> None:
    known = reference.docker_config_keys() if executor == "docker" else reference.cloudrun_config_keys()
    documented = set().union(*(names_in(row["Key"]) for row in table("DOCKER.md", f"config {executor}")))
    assert documented == known


# Policy ------------------------------------------------------------------------------------------


def test_violation_codes_exist() -> None:
    codes = reference.violation_codes()
    problems: list[str] = []
    for name in mdscan.DOCUMENTS:
        document = load(name)
        for table_name, rows in document.tables.items():
            if table_name.startswith("codes"):
                for row in rows:
                    problems.extend(
                        f"{name}: {table_name}: {c}" for c in names_in(row["Code"]) if c not in codes
                    )
        for code in document.inline_code():
            if re.fullmatch(r"(payload\.[a-z-]+|cloudrun_[a-z_]+)", code) and code not in codes:
                problems.append(f"{name}: `{code}`")
    for block in python_blocks():
        if block.is_doctest:
            for code in re.findall(r"code='([a-z_.-]+)'", block.text):
                if code not in codes:
                    problems.append(f"{block.where}: {code}")
    assert not problems, "unknown violation codes:\n" + "\n".join(problems)


def test_the_security_section_lists_every_policy_code() -> None:
    documented = set().union(*(names_in(r["Code"]) for r in table("DOCKER.md", "codes core")))
    assert documented == reference.core_policy_codes()


def test_the_security_section_lists_every_payload_code() -> None:
    documented = set().union(*(names_in(r["Code"]) for r in table("DOCKER.md", "codes payload")))
    assert documented == {c for c in reference.violation_codes() if c.startswith("payload.")}


# Messages, loggers, events -----------------------------------------------------------------------


def troubleshooting_quotes() -> list[Block]:
    return [b for b in load("DOCKER.md").blocks if b.section == "Troubleshooting" and b.lang == "text"]


def test_troubleshooting_quotes_what_the_code_prints() -> None:
    quotes = troubleshooting_quotes()
    assert quotes
    problems = [
        f"{block.where}: {line!r}"
        for block in quotes
        for line in block.text.splitlines()
        if line.strip() and not reference.printed_by_the_code(line.strip())
    ]
    assert not problems, "not a message of the code:\n" + "\n".join(problems)


def _logging_loggers(node: ast.Assign) -> list[str]:
    """Return the logger names of a ``LOGGING = {...}`` assignment."""
    if not isinstance(node.value, ast.Dict):
        return []
    for key, value in zip(node.value.keys, node.value.values, strict=True):
        if isinstance(key, ast.Constant) and key.value == "loggers":
            return literal_keys(value)
    return []


def documented_loggers() -> Iterator[tuple[str, str]]:
    """Yield (where, logger) for the logging table, prose that says "... logger", and LOGGING dicts."""
    for row in table("API.md", "loggers"):
        yield "API.md: loggers", unquote(row["Logger"])
    for name in mdscan.DOCUMENTS:
        prose = load(name).prose
        for logger in re.findall(r"`([a-z_.]+)` logger", prose) + re.findall(r"logger `([a-z_.]+)`", prose):
            yield name, logger
    for block, tree in parsed_python():
        for node in ast.walk(tree):
            is_get_logger = (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "getLogger"
                and bool(node.args)
                and isinstance(node.args[0], ast.Constant)
            )
            if is_get_logger:
                assert isinstance(node, ast.Call) and isinstance(node.args[0], ast.Constant)
                yield block.where, str(node.args[0].value)
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "LOGGING" for t in node.targets
            ):
                yield from ((block.where, logger) for logger in _logging_loggers(node))


def test_logger_names_exist() -> None:
    known = reference.logger_names()
    problems = [
        f"{where}: {logger}"
        for where, logger in documented_loggers()
        if logger not in known and not any(k.startswith(logger + ".") for k in known)
    ]
    assert not problems, "no such logger:\n" + "\n".join(problems)


def test_worker_events_exist() -> None:
    known = reference.worker_events()
    for block in mdscan.all_blocks():
        if block.lang in {"text", "python"}:
            for event in re.findall(r"\bevent=([a-z_]+)", block.text):
                assert event in known, f"{block.where}: no worker event {event!r}"
    for name in mdscan.DOCUMENTS:
        for event in re.findall(r"`event=([a-z_]+)`", load(name).prose):
            assert event in known, f"{name}: no worker event {event!r}"


def test_health_keys_exist() -> None:
    from docker_executor.health import engine_details

    from container_manager_core.types import HealthStatus

    known = set(HealthStatus(healthy=True, response_time=0.0).as_dict()) | set(engine_details({}, "1.41"))
    for block, tree in parsed_python():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Subscript)
                and isinstance(node.value, ast.Name)
                and node.value.id == "health"
                and isinstance(node.slice, ast.Constant)
            ):
                assert node.slice.value in known, f"{block.where}: health has no {node.slice.value!r}"


# API tables --------------------------------------------------------------------------------------


def test_transition_table_matches_the_state_machine() -> None:
    from container_manager.states import TRANSITIONS

    documented = {unquote(row["From"]): names_in(row["To"]) for row in table("API.md", "transitions")}
    assert documented == {str(s): {str(t) for t in targets} for s, targets in TRANSITIONS.items()}


def test_state_diagram_matches_the_state_machine() -> None:
    from container_manager.states import TRANSITIONS

    diagrams = [b for b in load("API.md").blocks if b.lang == "mermaid" and "stateDiagram" in b.text]
    assert len(diagrams) == 1
    edges = set(re.findall(r"^\s*([a-z]+)\s*-->\s*([a-z]+)", diagrams[0].text, re.MULTILINE))
    assert edges == {(str(s), str(t)) for s, targets in TRANSITIONS.items() for t in targets}


def test_termination_reason_table() -> None:
    from container_manager.states import RETRYABLE, TerminationReason

    rows = {unquote(row["Reason"]): row for row in table("API.md", "termination reasons")}
    assert set(rows) == {str(r) for r in TerminationReason}
    retried = {reason for reason, row in rows.items() if row["Retried"].lower().startswith("yes")}
    assert retried == {str(r) for r in RETRYABLE}


def _documented_signatures(table_name: str, key: str, functions: dict[str, Any]) -> None:
    rows = {unquote(row[key]): row for row in table("API.md", table_name)}
    assert set(rows) == set(functions)
    for name, function in functions.items():
        arguments = [
            p.name
            for p in inspect.signature(function).parameters.values()
            if p.name != "self" and p.kind is not p.VAR_KEYWORD
        ]
        assert [a.strip("` ") for a in rows[name]["Arguments"].split(",") if a.strip()] == arguments, name


def test_hook_table_matches_the_hook_specs() -> None:
    from container_manager_core.hookspecs import PolicySpec, RegistrationSpec

    specs: dict[str, Any] = {}
    for cls in (RegistrationSpec, PolicySpec):
        specs.update({n: f for n, f in vars(cls).items() if callable(f) and not n.startswith("_")})
    _documented_signatures("hooks", "Hook", specs)


def test_operation_table_matches_the_executor_base_class() -> None:
    from container_manager_core.plugins import ExecutorPlugin

    operations = {
        name: getattr(ExecutorPlugin, name)
        for name in (*ExecutorPlugin.__abstractmethods__, "wait_for_exit", "follow_logs")
    }
    _documented_signatures("executor operations", "Operation", operations)


def test_signal_table_matches_the_signals() -> None:
    from django.dispatch import Signal

    from container_manager import signals

    actual = {name for name, value in vars(signals).items() if isinstance(value, Signal)}
    documented = {unquote(row["Signal"]) for row in table("API.md", "signals")}
    assert documented == actual


def test_executor_method_table_matches_the_factory() -> None:
    from container_manager.executors.factory import HostExecutor

    actual = {
        name
        for name, value in vars(HostExecutor).items()
        if callable(value) and (not name.startswith("_") or name == "_get_client")
    }
    documented = {unquote(row["Method"]).split("(")[0] for row in table("API.md", "executor methods")}
    assert documented == actual


# The harness itself ------------------------------------------------------------------------------


BAD_EXAMPLES = """\
```python
>>> 1 + 1
3
```

```bash
exit 3
```

```python
# settings.py
CONTAINER_MANAGER = {"MAX_MEMORY_GB": 2}
```

```python
# settings.py
CONTAINER_MANAGER = {"DEFAULT_MEMORY_LIMIT_MB": 4096}
```

```python
raise RuntimeError("an example that fails")
```
"""


def test_the_harness_fails_bad_examples(tmp_path: Path) -> None:
    path = tmp_path / "bad.md"
    path.write_text(BAD_EXAMPLES)
    document = SybilDocument.parse(str(path), *parsers())
    run = DocsRun(project_dir=tmp_path, env={"PATH": "/usr/bin:/bin"})
    examples = list(document.examples())
    assert len(examples) == 5
    for example in examples:
        example.namespace["_docs"] = run
        with pytest.raises(Exception):  # noqa: B017 - each example fails in its own way
            example.evaluate()


def test_the_harness_passes_good_examples(tmp_path: Path) -> None:
    path = tmp_path / "good.md"
    path.write_text(
        '```python\n>>> 1 + 1\n2\n```\n\n```bash\ntest -n "$PATH"\n```\n\n'
        '```python\n# settings.py\nCONTAINER_MANAGER = {"MAX_MEMORY_MB": 1024}\n```\n'
    )
    document = SybilDocument.parse(str(path), *parsers())
    run = DocsRun(project_dir=tmp_path, env={"PATH": "/usr/bin:/bin"})
    for example in document.examples():
        example.namespace["_docs"] = run
        example.evaluate()
