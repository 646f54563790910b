"""What the policy approves is what the engine runs: a differential test against the real engine.

Hypothesis draws host configs (``executor_config``) and ``create_job`` arguments, odd ones included.
Each goes through the real doors in order: the host's ``full_clean()``, ``create_job``, the worker's
claim-time re-check (``launch_violations`` on the row as stored), then the Docker plugin's request
build and payload guard. Whatever every door accepts is created on the local engine (never
started), inspected, and held to invariants read from the engine's own answer, with no help from
the policy's code. Whatever a door refuses must say why with a documented code and a sentence; a
row written behind a door's back (``save()`` without ``full_clean()``, ``QuerySet.update``) must be
refused again, with the same codes, by the check the worker runs.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

import docker
import docker.errors
import pytest
from django.core.exceptions import ValidationError
from docker_executor.guard import check_create_payload
from docker_executor.payload import CreatePayload, build_create_payload
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from container_manager.conf import app_settings
from container_manager.models import ContainerJob, ExecutorHost
from container_manager.validation import encode_command
from container_manager_core.errors import PolicyViolationError
from docs import mdscan
from tests.dockertools import RUN_ID, TEST_LABEL

pytestmark = [pytest.mark.docker, pytest.mark.django_db]

MIB = 1024 * 1024
GIB = 1024 * MIB
SOCKET = "unix:///var/run/docker.sock"
# The engine's CFS period is 100 ms; the kernel's smallest quota is 1 ms. Below that the engine's
# integer quota is refused at start or rounds to 0, which means no limit.
CFS_PERIOD_US = 100_000
MIN_CFS_QUOTA_US = 1_000
NAMESPACE_KEYS = ("NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode")
# Written here, not imported from the policy, so the oracle cannot share a bug with what it checks.
SYSTEM_DIRS = (
    "/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/root", "/run",
    "/sbin", "/sys", "/usr", "/var/lib/docker", "/var/run",
)  # fmt: skip
KERNEL_DIRS = ("/proc", "/sys", "/dev")
# Jobs made through the app bind nothing from the host.
ALLOWED_BIND_DIRS: tuple[str, ...] = ()
# Refusal codes Django's own field validation gives, with Django's own sentences.
DJANGO_CODES = frozenset({"invalid", "min_value", "max_value", "max_length", "blank", "null", "required"})

# Findings the engine shows and no door refuses yet, each with a strict xfail test that names it.
# The property still reports every other breach. None is open now.
OPEN_FINDINGS: dict[str, str] = {}

_numbers = itertools.count(1)


# The one glue function ---------------------------------------------------------------------------


def engine_request(job: ContainerJob, host: ExecutorHost, api_version: str) -> CreatePayload:
    """Return the create request the Docker plugin would send for ``job`` on ``host``, once guarded.

    The one place this test knows how a queued job becomes an engine request: the spec the worker
    builds from the row, the plugin's payload, the plugin's guard (raising PolicyViolationError).
    """
    host_spec = host.to_spec()
    payload = build_create_payload(host_spec, job.to_spec(), api_version)
    check_create_payload(payload.config, host_spec, payload.extra_networks)
    return payload


# The engine's answer, judged on its own terms ----------------------------------------------------


def invariant_breaches(inspected: Mapping[str, Any], *, allow_list: bool) -> dict[str, str]:
    """Return ``{what: why}`` for every isolation invariant the created container breaks."""
    hc: Mapping[str, Any] = inspected["HostConfig"]
    config: Mapping[str, Any] = inspected["Config"]
    breaches: dict[str, str] = {}
    uid, sep, gid = str(config.get("User") or "").partition(":")
    if not (sep and all(part.isascii() and part.isdigit() for part in (uid, gid))):
        breaches["User"] = f"User={config.get('User')!r} is not a numeric UID:GID"
    elif int(uid) == 0 or int(gid) == 0:
        breaches["User"] = f"User={config.get('User')!r} is root or the root group"
    if any(str(group).strip() in ("0", "root") for group in hc.get("GroupAdd") or ()):
        breaches["GroupAdd"] = f"supplementary group 0 in {hc['GroupAdd']!r}"
    nano, quota = hc.get("NanoCpus") or 0, hc.get("CpuQuota") or 0
    cfs_quota_us = nano * CFS_PERIOD_US // 10**9 if nano else quota
    if cfs_quota_us < MIN_CFS_QUOTA_US:
        breaches["CPU"] = f"a CFS quota of {cfs_quota_us} us (NanoCpus={nano}, CpuQuota={quota})"
    memory, maximum = hc.get("Memory") or 0, app_settings().MAX_MEMORY_MB * MIB
    if not 0 < memory <= maximum or hc.get("MemorySwap") != memory:
        breaches["Memory"] = f"Memory={memory}, MemorySwap={hc.get('MemorySwap')}, maximum {maximum}"
    if not (hc.get("PidsLimit") or 0) > 0:
        breaches["PidsLimit"] = f"PidsLimit={hc.get('PidsLimit')!r}"
    if hc.get("Privileged"):
        breaches["Privileged"] = "privileged"
    for key in NAMESPACE_KEYS:
        mode = str(hc.get(key) or "").strip().lower()
        if mode == "host" or mode.startswith("container:"):
            breaches[key] = f"{key}={hc.get(key)!r}"
    if hc.get("ReadonlyRootfs") is not True:
        breaches["ReadonlyRootfs"] = "a writable root filesystem"
    if "ALL" not in (hc.get("CapDrop") or ()) or hc.get("CapAdd"):
        breaches["Capabilities"] = f"CapDrop={hc.get('CapDrop')!r}, CapAdd={hc.get('CapAdd')!r}"
    options = [str(option) for option in hc.get("SecurityOpt") or ()]
    if not {"no-new-privileges", "no-new-privileges=true", "no-new-privileges:true"} & set(options):
        breaches["no-new-privileges"] = f"SecurityOpt={options!r}"
    if any(option.startswith(("seccomp=", "seccomp:")) for option in options):
        breaches["seccomp"] = "a seccomp profile other than the engine's default"
    binds = [str(m.get("Source")) for m in inspected.get("Mounts") or () if m.get("Type") == "bind"]
    binds += [str(bind).partition(":")[0] for bind in hc.get("Binds") or ()]
    if outside := [source for source in binds if not any(_within(source, d) for d in ALLOWED_BIND_DIRS)]:
        breaches["Binds"] = f"host paths bound: {outside!r}"
    for target in hc.get("Tmpfs") or {}:
        if any(_within(d, target) for d in SYSTEM_DIRS) or any(_within(target, d) for d in KERNEL_DIRS):
            breaches["Tmpfs"] = f"a tmpfs over {target!r}"
    if hc.get("Init") is not True:
        breaches["Init"] = f"Init={hc.get('Init')!r}"
    log = hc.get("LogConfig") or {}
    size, files = (log.get("Config") or {}).get("max-size", ""), (log.get("Config") or {}).get("max-file", "")
    if log.get("Type") != "json-file" or not (size.isdigit() and files.isdigit()):
        breaches["LogConfig"] = f"engine logs not bounded in bytes: {log!r}"
    elif not 0 < int(size) * int(files) <= GIB:
        breaches["LogConfig"] = f"engine logs of {int(size) * int(files)} bytes"
    if allow_list and re.fullmatch(r"(sha256:)?[0-9a-f]+", str(config.get("Image"))):
        breaches["Image"] = f"image ID {config.get('Image')!r} under a registry allow-list"
    return breaches


def _within(path: str, directory: str) -> bool:
    path, directory = path.rstrip("/") or "/", directory.rstrip("/") or "/"
    return directory == "/" or path == directory or path.startswith(directory + "/")


def create_and_inspect(client: docker.DockerClient, payload: CreatePayload) -> Mapping[str, Any]:
    """Create the container exactly as requested (never started), inspect it, remove it."""
    labels = {**payload.config.get("Labels", {}), TEST_LABEL: RUN_ID}  # for the cleanup fixture only
    config = {**payload.config, "Labels": labels}
    created = client.api.create_container_from_config(config, name=payload.name)  # type: ignore[no-untyped-call]  # untyped in docker-stubs
    try:
        inspected: Mapping[str, Any] = client.api.inspect_container(created["Id"])
    finally:
        client.api.remove_container(created["Id"], force=True, v=True)
    return inspected


# Refusals -----------------------------------------------------------------------------------------


@cache
def documented_codes() -> frozenset[str]:
    """Return every name the documents show as code, in prose or tables: a code a person can look up."""
    names: set[str] = set()
    for name in mdscan.DOCUMENTS:
        document = mdscan.load(name)
        names.update(document.inline_code())
        for rows in document.tables.values():
            names.update(
                code for row in rows for cell in row.values() for code in re.findall(r"`([^`]+)`", cell)
            )
    return frozenset(names)


def refusal(error: ValidationError) -> dict[str, list[str]]:
    """Return ``{code: [messages]}`` of a ValidationError, asserting each is documented and readable."""
    found: dict[str, list[str]] = {}
    for item in error.error_list if not hasattr(error, "error_dict") else _flat(error):
        message = item.message % item.params if item.params else item.message
        code = str(item.code)
        assert item.code is not None and re.fullmatch(r"[a-z][a-z0-9_.-]*", code), f"no code: {message}"
        assert code in documented_codes() | DJANGO_CODES, f"undocumented code {code!r}: {message}"
        assert 20 <= len(message) <= 1000 and "x" * 100 not in message, (code, message[:200])
        found.setdefault(code, []).append(str(message))
    assert found, "a refusal without a reason"
    return found


def _flat(error: ValidationError) -> Iterator[ValidationError]:
    for errors in error.error_dict.values():
        yield from errors


def guard_refusal(error: PolicyViolationError) -> set[str]:
    codes = set()
    for violation in error.violations:
        assert violation.code in documented_codes(), f"undocumented guard code {violation.code!r}"
        assert 20 <= len(violation.message) <= 1000, violation
        codes.add(violation.code)
    return codes


# What hypothesis draws ---------------------------------------------------------------------------


class Sized(str):
    """A long string that hypothesis shows by its size, not its kilobytes of text."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<{len(self)} characters: {self[:8]!r}...>"


def sized(sizes: list[int], unit: str = "x", prefix: str = "") -> st.SearchStrategy[str]:
    return st.sampled_from(sizes).map(lambda n: Sized(prefix + unit * n))


NETWORKS = ["none", "host", "HOST", " host", "container:victim", "Container:abc", "container:", "no such!"]
USERS = st.one_of(
    st.sampled_from(
        [
            "00",
            "0000:0000",
            "1001",
            "65534:0",
            " 1001",
            "1001 ",
            "nobody",
            "0",
            "1001:0",
            "0:1001",
            "00001001",
            "65534",
            "1001:1001",
            "4294967294",
            "4294967295",
            "1001:",
            ":1001",
            "",
            "\u0661001",
            "+1001",
        ]
    ),
    st.builds(
        lambda pad, uid, gid: f"{pad}{uid}" + ("" if gid is None else f":{gid}"),
        st.sampled_from(["", "0", "000"]),
        st.sampled_from([0, 1, 999, 1000, 1001, 1002, 65534, 2**31]),
        st.none() | st.sampled_from([0, 1, 1001, 65534]),
    ),
)
MEMORY_AROUND_ENGINE_MINIMUM = [-1, 0, 1, 4, 5, 6, 7, 8]


def job_changes(images: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Up to three create_job arguments changed from a job every door accepts."""
    fields: dict[str, st.SearchStrategy[Any]] = {
        "user": USERS,
        "cpu_limit": st.one_of(
            st.sampled_from([1e-6, 0.0, -1.0, 0.009, 0.0099999, 0.01, 0.0100001, 2.0, 2.0000001, math.inf]),
            st.floats(1e-7, 3.0),
        ),
        "memory_limit": st.one_of(
            st.sampled_from([*MEMORY_AROUND_ENGINE_MINIMUM, 2047, 2048, 2049, 10**6]), st.integers(6, 2048)
        ),
        "pids_limit": st.one_of(st.sampled_from([0, 1, 1024, 1025]), st.integers(1, 1024)),
        "timeout_seconds": st.sampled_from([0, 1, 60, 3600, 3601]),
        "max_retries": st.sampled_from([0, 10, 11, 1_000_000_000]),
        "environment_vars": st.dictionaries(
            st.sampled_from(["A", "_X", "MODE", "1BAD", "A-B"]),
            st.one_of(
                sized([0, 1, 65_531, 65_532, 65_540, 200_000]), sized([40_000], "\u00e9"), st.just("a\x00b")
            ),
            max_size=5,
        ),
        "command": st.one_of(
            # Never None: the test image has no CMD of its own, so the engine would refuse it.
            st.sampled_from(["true", ["true"], []]),
            sized([10, 65_536, 65_537, 300_000], prefix="echo "),
            sized([70_000]).map(lambda text: ["echo", text]),
        ),
        "image": st.sampled_from(images),
        "network_configuration": st.lists(
            st.sampled_from(NETWORKS).map(lambda name: {"network_name": name}), max_size=2
        ),
        "name": st.sampled_from(["", "odd \u2603 name", "n" * 200, "n" * 201]),
    }
    pairs = [st.tuples(st.just(name), strategy) for name, strategy in fields.items()]
    return st.lists(st.one_of(*pairs), max_size=3).map(dict)


def host_configs() -> st.SearchStrategy[dict[str, Any]]:
    """A default network (mostly none), and up to two other settings, odd and unknown keys included."""
    usual: dict[str, st.SearchStrategy[Any]] = {
        "log_max_size": st.sampled_from(["10m", "1k", "100m", "200mb"]),
        "log_max_file": st.sampled_from([1, 3, "5"]),
        "use_init": st.just(True),
        "allowed_registries": st.sampled_from(
            [["docker.io/library"], ["docker.io"], ["docker.io/container-manager-test"], "docker.io", []]
        ),
        "timeout": st.just(30),
    }
    odd: dict[str, st.SearchStrategy[Any]] = {
        "log_max_size": st.sampled_from(["1000000g", "1g", "0", "1.5g", "abc", -1, 1048576]),
        "log_max_file": st.sampled_from([0, 1000, "x", True]),
        "use_init": st.sampled_from([False, "true", 1, None]),
        "allowed_registries": st.sampled_from([5, [5], {"docker.io": True}]),
        "timeout": st.sampled_from([0, -1, "5"]),
        "timout": st.just(5),
        "privileged": st.just(True),
        "cap_add": st.just(["SYS_ADMIN"]),
    }
    usual_settings = st.lists(st.one_of(*(st.tuples(st.just(k), v) for k, v in usual.items())), max_size=2)
    odd_settings = st.lists(st.one_of(*(st.tuples(st.just(k), v) for k, v in odd.items())), max_size=1)
    # Mostly none: a host refused for its network tells nothing about the job half of the example.
    network = st.sampled_from(["none"] * 8 + NETWORKS[1:])
    return st.builds(
        lambda net, usual, odd: {"default_network": net, **dict(usual), **dict(odd)},
        network,
        usual_settings,
        odd_settings,
    )


# The doors ----------------------------------------------------------------------------------------

MODEL_FIELDS = {"image": "docker_image", "environment_vars": "environment_overrides"}


def stored_fields(changes: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the model fields ``changes`` are stored as, or None if no database could store them."""
    fields: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "command":
            try:
                fields["command"], fields["command_form"] = encode_command(value)
            except ValidationError:
                return None
        elif key == "network_configuration":
            fields[key] = value or []
        else:
            fields[MODEL_FIELDS.get(key, key)] = value
    env = fields.get("environment_overrides", {})
    if any("\x00" in value for value in env.values()):
        return None  # PostgreSQL's JSON cannot hold a NUL
    return fields


def check_host(config: dict[str, Any]) -> tuple[ExecutorHost, set[str]]:
    """Save a host with ``config`` through full_clean(), or behind its back; return it and its refusal codes."""
    host = ExecutorHost(
        name=f"diff-{RUN_ID}-{next(_numbers)}",
        executor_type="docker",
        host_type="unix",
        connection_string=SOCKET,
        executor_config=config,
    )
    try:
        host.full_clean()
    except ValidationError as exc:
        codes = set(refusal(exc))
        host.save()  # behind full_clean()'s back: the worker's load check must refuse it the same way
        reloaded = ExecutorHost.objects.get(pk=host.pk)
        worker_codes = {
            e.code for errors in reloaded.unusable_errors(source="worker").values() for e in errors
        }
        assert worker_codes == codes, (config, codes, worker_codes)
        return host, codes
    host.save()
    return host, set()


def check_job(host: ExecutorHost, base: dict[str, Any], changes: dict[str, Any]) -> ContainerJob | None:
    """Queue the job through create_job; on a refusal, store it behind create_job's back and re-check."""
    arguments = {**base, **changes}
    try:
        job = ContainerJob.objects.create_job(
            arguments.pop("image"), arguments.pop("command"), docker_host=host, **arguments
        )
    except ValidationError as exc:
        codes = set(refusal(exc))
        for code in sorted(codes):
            event(f"create_job refused: {code}")
        fields = stored_fields(changes)
        if fields is not None and not codes & DJANGO_CODES:
            row = store_behind_the_back(host, base, fields)
            assert worker_verdict(row, host) == codes, (changes, codes)
        return None
    row = ContainerJob.objects.select_related("docker_host").get(pk=job.pk)
    assert worker_verdict(row, host) == set(), changes  # the worker's verdict on the stored row
    return row


def store_behind_the_back(
    host: ExecutorHost, base: Mapping[str, Any], fields: Mapping[str, Any]
) -> ContainerJob:
    """Save the job's row as a migration or a raw fix would: no full_clean(), no create_job."""
    defaults = app_settings()
    row = ContainerJob.objects.create(
        **{
            "docker_image": base["image"],
            "command": base["command"],
            "docker_host": host,
            "executor_type": host.executor_type,
            "user": base["user"],
            "memory_limit": base["memory_limit"],
            "cpu_limit": base["cpu_limit"],
            "timeout_seconds": defaults.DEFAULT_TIMEOUT_SECONDS,
            "pids_limit": defaults.DEFAULT_PIDS_LIMIT,
            **fields,
        }
    )
    return ContainerJob.objects.select_related("docker_host").get(pk=row.pk)


def worker_verdict(row: ContainerJob, host: ExecutorHost) -> set[str]:
    """Return the codes the worker's claim-time check gives a stored row, as the worker reads it."""
    try:
        spec = row.to_spec()
    except (TypeError, ValueError):
        return {"invalid_spec"}  # the worker fails such a row as invalid_spec, before the policy
    return {v.code for v in row.launch_violations(spec, host.to_spec(), app_settings())}


ENGINE_EXAMPLES = hypothesis_settings(
    max_examples=100,
    deadline=None,
    # The same draws on every run, so CI never depends on luck; drop it locally to explore further.
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


@pytest.fixture
def images(docker_client: docker.DockerClient, test_image: str) -> list[str]:
    """The test image by its tag, fully qualified, and as the engine's IDs; and a name that is no image."""
    image_id = str(docker_client.images.get(test_image).id)
    return [
        test_image,
        f"docker.io/{test_image}",
        image_id,
        image_id.removeprefix("sha256:")[:12],
        "Bad Image",
    ]


def test_what_every_door_accepts_the_engine_runs_isolated(
    settings: Any, docker_client: docker.DockerClient, test_image: str, images: list[str], cleanup: None
) -> None:
    # An owner of this run's own, so no other worker on this engine ever adopts these containers.
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "MANAGER_ID": f"difftest-{RUN_ID}"}
    api_version = str(docker_client.api.api_version)
    base = {"image": test_image, "command": "true", "user": "1001:1001", "memory_limit": 64, "cpu_limit": 0.5}
    outcomes: Counter[str] = Counter()
    usable_host, codes = check_host({"default_network": "none"})
    assert codes == set()

    @ENGINE_EXAMPLES
    @given(host_config=host_configs(), changes=job_changes(images))
    def property(host_config: dict[str, Any], changes: dict[str, Any]) -> None:
        host, host_codes = check_host(host_config)
        if host_codes:
            outcomes["host refused"] += 1
            host = usable_host  # the job half of the example still runs, on a host the doors accept
        job = check_job(host, base, changes)
        if job is None:
            outcomes["job refused"] += 1
            return
        try:
            payload = engine_request(job, host, api_version)
        except PolicyViolationError as exc:
            for code in sorted(guard_refusal(exc)):
                event(f"guard refused: {code}")
            outcomes["guard refused"] += 1
            return
        try:
            inspected = create_and_inspect(docker_client, payload)
        except docker.errors.APIError as exc:
            breaches = {"engine refused": str(exc.explanation)}
        else:
            outcomes["created"] += 1
            breaches = invariant_breaches(inspected, allow_list="allowed_registries" in host.executor_config)
        outcomes.update(f"open finding: {what}" for what in breaches if what in OPEN_FINDINGS)
        unexpected = {what: why for what, why in breaches.items() if what not in OPEN_FINDINGS}
        assert unexpected == {}, (host_config, changes)

    property()
    # Proves something only if enough reached the engine, and enough were refused.
    assert outcomes["created"] >= 15, outcomes
    assert min(outcomes["job refused"], outcomes["host refused"]) >= 10, outcomes


# The open findings, one strict xfail each ---------------------------------------------------------


@pytest.fixture
def good_host(settings: Any) -> ExecutorHost:
    settings.CONTAINER_MANAGER = {**settings.CONTAINER_MANAGER, "MANAGER_ID": f"difftest-{RUN_ID}"}
    host, codes = check_host({"default_network": "none"})
    assert codes == set()
    return host


def test_the_container_gets_a_cgroup_namespace_of_its_own(
    docker_client: docker.DockerClient,
    test_image: str,
    good_host: ExecutorHost,
    cleanup: None,
) -> None:
    job = ContainerJob.objects.create_job(test_image, "true", docker_host=good_host)
    inspected = create_and_inspect(
        docker_client, engine_request(job, good_host, str(docker_client.api.api_version))
    )
    assert "CgroupnsMode" not in invariant_breaches(inspected, allow_list=False)


@pytest.mark.parametrize("memory_limit", [1, 4, 5])
def test_memory_below_the_engine_minimum_is_refused_before_the_engine(
    memory_limit: int, test_image: str, good_host: ExecutorHost
) -> None:
    # Found by this module before MIN_MEMORY_MB, when only the engine refused it, at create.
    with pytest.raises(ValidationError) as raised:
        ContainerJob.objects.create_job(test_image, "true", docker_host=good_host, memory_limit=memory_limit)
    assert "memory_limit_too_low" in refusal(raised.value)


def test_an_empty_exec_command_is_refused_with_a_documented_code(
    test_image: str, good_host: ExecutorHost
) -> None:
    with pytest.raises(ValidationError) as raised:
        ContainerJob.objects.create_job(test_image, [], docker_host=good_host)
    assert set(refusal(raised.value)) <= documented_codes()
