"""Property tests of the readings the policy and the Docker guard share: users, sizes, CPU, image IDs."""

from __future__ import annotations

import pytest
from docker_executor.guard import MIN_NANO_CPUS, payload_violations
from docker_executor.payload import build_create_payload
from docker_executor.rules import MAX_LOG_BYTES, InvalidSize, log_problem, parse_size
from hypothesis import given
from hypothesis import strategies as st

from container_manager_core.identity import MAX_ID, InvalidUser, parse_user
from container_manager_core.images import could_be_image_id
from container_manager_core.policy import validate_job
from container_manager_core.types import Command, HostSpec, JobSpec, PolicyLimits

ids = st.integers(0, MAX_ID)
zeros = st.integers(0, 6).map(lambda n: "0" * n)
LIMITS = PolicyLimits()


def spec(**fields: object) -> JobSpec:
    base: dict[str, object] = {
        "job_id": "j",
        "image": "docker.io/library/busybox:1",
        "command": Command.shell("true"),
        "user": "1001:1001",
        "memory_limit_mb": 64,
        "cpu_limit": 0.5,
        "pids_limit": 32,
        "timeout_seconds": 60,
        "network_mode": "none",
    }
    base.update(fields)
    return JobSpec(**base)  # type: ignore[arg-type]


def codes(job: JobSpec, limits: PolicyLimits = LIMITS, host: HostSpec | None = None) -> set[str]:
    return {v.code for v in validate_job(host, job, limits)}


# Users ---------------------------------------------------------------------------------------------


@given(uid=ids, gid=st.none() | ids, pad_uid=zeros, pad_gid=zeros)
def test_a_numeric_user_is_read_as_numbers_whatever_the_leading_zeros(
    uid: int, gid: int | None, pad_uid: str, pad_gid: str
) -> None:
    text = f"{pad_uid}{uid}" + ("" if gid is None else f":{pad_gid}{gid}")
    user = parse_user(text)
    assert (user.uid, user.gid) == (uid, gid)
    # The engine always gets canonical digits and an explicit group: never the engine's default 0.
    assert user.engine_user() == f"{uid}:{uid if gid is None else gid}"
    assert parse_user(user.engine_user()).gid == user.effective_gid


@given(st.text(max_size=12))
def test_anything_but_ascii_digits_is_not_a_user(text: str) -> None:
    head, _, tail = text.partition(":")
    numeric = head.isascii() and head.isdigit() and (":" not in text or (tail.isascii() and tail.isdigit()))
    if numeric and all(int(part) <= MAX_ID for part in text.split(":")):
        parse_user(text)
    else:
        with pytest.raises(InvalidUser):
            parse_user(text)


@given(uid=ids, gid=st.none() | ids, pad=zeros)
def test_the_policy_and_the_guard_agree_on_every_numeric_user(uid: int, gid: int | None, pad: str) -> None:
    text = f"{pad}{uid}" + ("" if gid is None else f":{gid}")
    policy_refuses = bool(codes(spec(user=text)) & {"user_uid_too_low", "user_gid_root"})
    config = build_create_payload(HostSpec("h", "docker"), spec(user=text), "1.41").config
    guard_refuses = bool(
        {v.code for v in payload_violations(config)} & {"payload.root-user", "payload.root-group"}
    )
    effective_gid = uid if gid is None else gid
    assert policy_refuses == (uid < LIMITS.min_uid or effective_gid == 0)
    assert guard_refuses == (uid == 0 or effective_gid == 0)
    assert guard_refuses <= policy_refuses  # the guard is the last line, never stricter than the policy


# CPU -----------------------------------------------------------------------------------------------


@given(st.floats(min_value=1e-9, max_value=2.0, allow_nan=False, allow_infinity=False))
def test_a_cpu_limit_the_policy_accepts_is_one_the_engine_keeps(cpu: float) -> None:
    accepted = "cpu_limit_too_low" not in codes(spec(cpu_limit=cpu))
    assert accepted == (cpu >= LIMITS.min_cpu)
    nano = build_create_payload(HostSpec("h", "docker"), spec(cpu_limit=cpu), "1.41").config["HostConfig"][
        "NanoCpus"
    ]
    if accepted:
        # NanoCpus / 10^4 is the CFS quota in microseconds per 100 ms: at least the kernel's 1 ms.
        assert nano >= MIN_NANO_CPUS
        assert nano * 100_000 // 10**9 >= 1000


# Sizes ---------------------------------------------------------------------------------------------


@given(
    number=st.integers(0, 10**6),
    unit=st.sampled_from(["", "k", "K", "m", "M", "g", "G", "t", "p"]),
    suffix=st.sampled_from(["", "b", "B", "ib", "iB", "i"]),
    space=st.sampled_from(["", " "]),
)
def test_sizes_are_read_with_the_engines_units(number: int, unit: str, suffix: str, space: str) -> None:
    if not unit and suffix.startswith("i"):
        return  # "i" only follows a unit
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}[unit.lower()]
    assert parse_size(f"{number}{space}{unit}{suffix}") == number * scale


@given(st.text(alphabet="0123456789.kmgKMG- ibBx", max_size=8))
def test_a_size_either_parses_to_a_whole_number_of_bytes_or_is_refused(text: str) -> None:
    try:
        size = parse_size(text)
    except InvalidSize:
        return
    assert isinstance(size, int) and size >= 0


@given(size=st.integers(0, 2**40), files=st.integers(-2, 10**4))
def test_engine_logs_stay_under_the_bound(size: int, files: int) -> None:
    problem = log_problem(str(size), files)
    assert (problem is None) == (size >= 1 and files >= 1 and size * files <= MAX_LOG_BYTES)


def test_the_audit_log_size_is_refused() -> None:
    assert "above the maximum" in (log_problem("1000000g", 5) or "")


# Image IDs -----------------------------------------------------------------------------------------


@given(st.from_regex(r"(sha256:)?[a-f0-9]{1,63}", fullmatch=True))
def test_a_hex_name_is_refused_wherever_an_allow_list_applies(text: str) -> None:
    assert could_be_image_id(text)
    allowed = PolicyLimits(allowed_registries=("docker.io/library",))
    assert "image_id_not_allowed" in codes(spec(image=text), allowed)
    host = HostSpec("h", "docker", config={"allowed_registries": ["docker.io"]})
    assert "image_id_not_allowed" in codes(spec(image=text), host=host)
    assert not codes(spec(image=text)) & {"image_id_not_allowed", "image_registry_not_allowed"}


@given(
    st.from_regex(r"[a-z][a-z0-9]{0,10}(/[a-z0-9]{1,8})?(:[a-z0-9][a-z0-9.]{0,7})?", fullmatch=True).filter(
        lambda t: not could_be_image_id(t)
    )
)
def test_a_docker_hub_name_is_judged_by_its_registry(text: str) -> None:
    hub = PolicyLimits(allowed_registries=("docker.io",))
    elsewhere = PolicyLimits(allowed_registries=("ghcr.io",))
    assert not codes(spec(image=text), hub) & {"image_id_not_allowed", "image_registry_not_allowed"}
    assert "image_registry_not_allowed" in codes(spec(image=text), elsewhere)


# Environment and command sizes ------------------------------------------------------------------------


@given(value_bytes=st.integers(0, 200_000), command_bytes=st.integers(1, 300_000))
def test_env_and_command_sizes_are_bounded(value_bytes: int, command_bytes: int) -> None:
    found = codes(spec(env={"BIG": "x" * value_bytes}, command=Command.shell("x" * command_bytes)))
    assert ("env_var_too_large" in found) == (len("BIG=") + value_bytes > LIMITS.max_env_var_bytes)
    assert ("command_too_large" in found) == (command_bytes > LIMITS.max_command_bytes)
