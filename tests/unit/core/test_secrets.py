"""The one rule for "is this a secret": by name, by content; and the masks built on it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from container_manager_core.secrets import (
    REDACTED,
    is_secret,
    is_secret_name,
    looks_secret,
    mask_values,
    redact,
    scrub,
)
from container_manager_core.types import Command, HostSpec, JobSpec

# Names --------------------------------------------------------------------------------------------

SECRET_WORDS = [
    "PASSWORD", "PASSWD", "PWD", "PASS", "PASSPHRASE", "SECRET", "TOKEN", "KEY", "APIKEY", "DSN", "PAT",
    "CREDENTIAL", "CREDENTIALS", "CREDS", "AUTH", "PRIVATE", "COOKIE", "JWT",
]  # fmt: skip
PLAIN_WORDS = [
    "PATH", "HOME", "MODE", "REGION", "AUTHOR", "AUTHORITY", "PATTERN", "COMPASS", "PASSENGER", "MONKEY",
    "KEYBOARD", "TOKENIZER", "DB", "URL", "HOST", "PORT", "USER", "NAME", "LEVEL", "BUCKET", "TZ", "LANG",
]  # fmt: skip
plain_words = st.sampled_from(PLAIN_WORDS)


def join(words: list[str], style: str) -> str:
    if style == "snake":
        return "_".join(words)
    if style == "lower":
        return "_".join(words).lower()
    if style == "kebab":
        return "-".join(w.lower() for w in words)
    return words[0].lower() + "".join(w.capitalize() for w in words[1:])  # camelCase


styles = st.sampled_from(["snake", "lower", "kebab", "camel"])


@settings(max_examples=300)
@given(
    st.lists(plain_words, max_size=3),
    st.sampled_from(SECRET_WORDS),
    st.lists(plain_words, max_size=3),
    styles,
)
def test_a_name_with_a_secret_word_is_secret(
    before: list[str], word: str, after: list[str], style: str
) -> None:
    assert is_secret_name(join([*before, word, *after], style))


@settings(max_examples=300)
@given(st.lists(plain_words, min_size=1, max_size=4), styles, st.integers(0, 99) | st.none())
def test_a_name_of_plain_words_is_not_secret(words: list[str], style: str, suffix: int | None) -> None:
    name = join(words, style) + ("" if suffix is None else str(suffix))
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    ["DB_PASSWORD", "dbPassword", "SENTRY_DSN", "GITHUB_PAT", "SSH_KEY", "ssh-private-key", "identitytoken",
     "registrytoken", "clientSecret", "X_API_KEY2", "BASIC_AUTH", "aws_secret_access_key", "APIKey"],
)  # fmt: skip
def test_named_secrets(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name", ["PATH", "AUTHOR", "authority", "KEYBOARD_LAYOUT", "username", "serveraddress"]
)
def test_names_that_only_contain_a_secret_word_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


# Content ------------------------------------------------------------------------------------------

alnum = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=1)
upper_alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def fixed(alphabet: str, size: int) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=size, max_size=size)


ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
B64URL = ALNUM + "_-"
tokens = st.one_of(
    st.builds(
        lambda p, s: p + s, st.sampled_from(["ghp_", "gho_", "ghs_", "ghu_", "ghr_"]), fixed(ALNUM, 36)
    ),
    fixed(ALNUM + "_", 60).map(lambda s: "github_pat_" + s),
    fixed(upper_alnum, 16).map(lambda s: "AKIA" + s),
    st.builds(lambda k, s: f"xox{k}-{s}", st.sampled_from("abpors"), fixed(ALNUM + "-", 30)),
    fixed(B64URL, 35).map(lambda s: "AIza" + s),
    st.builds(lambda m, s: f"sk_{m}_{s}", st.sampled_from(["live", "test"]), fixed(ALNUM, 24)),
    fixed(B64URL, 40).map(lambda s: "sk-proj-" + s),
    fixed(B64URL, 20).map(lambda s: "glpat-" + s),
    st.builds(lambda h, p, s: f"eyJ{h}.eyJ{p}.{s}", fixed(B64URL, 20), fixed(B64URL, 30), fixed(B64URL, 43)),
    st.builds(
        lambda kind, body: f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----",
        st.sampled_from(["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED "]),
        fixed(ALNUM + "+/=\n", 64),
    ),
    fixed(ALNUM + "._~+/=-", 24).map(lambda s: "Bearer " + s),
)
credential_urls = st.builds(
    lambda scheme, user, password, host: f"{scheme}://{user}{':' + password if password else ''}@{host}/app",
    st.sampled_from(["postgres", "postgresql", "mysql", "redis", "amqp", "https", "git+ssh", "mongodb+srv"]),
    alnum,
    alnum | st.just(""),
    st.sampled_from(["db", "db.internal:5432", "o1.ingest.sentry.io"]),
)
secret_contents = tokens | credential_urls
# Text around a secret: words and punctuation, never something that would join onto a token.
surroundings = st.text(" .,;()[]\n\"'", max_size=3).map(lambda s: s or " ")
prose = st.lists(
    st.sampled_from(["launch", "failed:", "the", "job", "at", "line", "2", "->", "ok"]), max_size=5
).map(" ".join)


@settings(max_examples=400)
@given(secret_contents, prose, surroundings, surroundings, prose)
def test_a_secret_is_found_and_masked_wherever_it_stands(
    secret: str, head: str, left: str, right: str, tail: str
) -> None:
    text = f"{head}{left}{secret}{right}{tail}"
    assert looks_secret(secret)
    assert looks_secret(text)
    assert is_secret("ANYTHING", secret)
    scrubbed = scrub(text)
    assert secret not in scrubbed
    assert REDACTED in scrubbed
    assert scrub(scrubbed) == scrubbed


@settings(max_examples=300)
@given(
    st.lists(
        st.sampled_from(
            ["job", "host", "3", "exit", "code", "https://example.org/a", "mode=x", "level: 3", "ok."]
        ),
        max_size=8,
    )
)
def test_plain_text_comes_back_unchanged(words: list[str]) -> None:
    text = " ".join(words)
    assert not looks_secret(text)
    assert scrub(text) == text


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ("connect to postgres://u:pw@db/app failed", "postgres://", "u:pw"),
        ("SENTRY_DSN=https://abc123@o1.ingest.sentry.io/1", "SENTRY_DSN=", "abc123"),
        ("curl -H 'Authorization: Bearer abcdefgh12345678' x", "curl -H", "abcdefgh12345678"),
        ("--password=hunter2 --user bob", "--user bob", "hunter2"),
        ("{'password': 'hunter2', 'username': 'bob'}", "'username': 'bob'", "hunter2"),
        ("DB_PASSWORD=hunter2 MODE=x", "MODE=x", "hunter2"),
    ],
)
def test_scrub_masks_the_secret_and_keeps_the_rest(text: str, kept: str, gone: str) -> None:
    assert kept in scrub(text)
    assert gone not in scrub(text)


# Redaction ----------------------------------------------------------------------------------------


def flat_values(value: object) -> list[object]:
    if isinstance(value, dict):
        return [v for item in value.values() for v in flat_values(item)]
    if isinstance(value, list):
        return [v for item in value for v in flat_values(item)]
    return [value]


config_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8) | secret_contents,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(PLAIN_WORDS + SECRET_WORDS), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(PLAIN_WORDS + SECRET_WORDS).map(str.lower), config_values, max_size=5))
def test_redact_leaves_no_secret_by_name_or_content(config: dict[str, object]) -> None:
    shown = redact(config)
    for value in flat_values(shown):
        assert not (isinstance(value, str) and value != REDACTED and looks_secret(value))
    for key, value in config.items():
        if is_secret_name(key) and not isinstance(value, dict | list) and is_secret(key, value):
            assert shown[key] == REDACTED
    # The plain parts stay readable, the shape stays the same.
    assert shown.keys() == config.keys()


def test_redact_keeps_plain_fields_beside_secrets() -> None:
    config = {
        "registry_auth": {"username": "bot", "password": "p", "identitytoken": "t"},
        "mirrors": ["https://mirror.example", "https://u:pw@private.example"],
        "tokens": ["a", "b"],
        "region": "eu",
        "auth_required": True,
    }
    assert redact(config) == {
        "registry_auth": {"username": "bot", "password": REDACTED, "identitytoken": REDACTED},
        "mirrors": ["https://mirror.example", REDACTED],
        "tokens": [REDACTED, REDACTED],
        "region": "eu",
        "auth_required": True,
    }


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=5))
def test_mask_values_keeps_names_only(env: dict[str, str]) -> None:
    assert mask_values(env) == dict.fromkeys(env, REDACTED)


# Reprs --------------------------------------------------------------------------------------------


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.from_regex(r"[A-Z_][A-Z0-9_]{0,10}", fullmatch=True),
        st.text(min_size=4, max_size=20).map("v!".__add__),
        max_size=5,
    ),
    secret_contents,
)
def test_a_job_spec_repr_shows_env_names_and_no_value(env: dict[str, str], secret: str) -> None:
    spec = JobSpec(job_id="j", image="busybox:latest", command=Command.shell(f"psql {secret}"), env=env)
    shown = repr(spec)
    for name, value in env.items():
        assert repr(name) in shown
        assert repr(value) not in shown
    assert secret not in shown
    assert secret not in repr(spec.command)


def test_a_host_spec_repr_masks_its_config_by_name_and_content() -> None:
    host = HostSpec(
        name="h",
        executor_type="docker",
        config={
            "registry_auth": {"username": "bot", "password": "pw-771"},
            "mirror": "https://u:mp-993@m.example",
        },
    )
    shown = repr(host)
    assert "'username': 'bot'" in shown and f"'mirror': '{REDACTED}'" in shown
    assert "pw-771" not in shown and "mp-993" not in shown


@pytest.mark.parametrize(
    ("build", "gone"),
    [
        (lambda: JobSpec(job_id="j", image="i", env={"DB_PASSWORD": 12345}), "12345"),  # type: ignore[dict-item]
        (lambda: Command("exec", "curl -u admin:pw-4410 x"), "pw-4410"),  # type: ignore[arg-type]
    ],
)
def test_a_type_error_names_the_field_never_the_value(build, gone: str) -> None:
    with pytest.raises(TypeError) as info:
        build()
    assert gone not in str(info.value)
