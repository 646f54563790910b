from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from container_manager_core.images import ImageReference, InvalidImageReference

DIGEST = "sha256:" + "0123456789abcdef" * 4

ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
alnum_runs = st.text(ALNUM, min_size=1, max_size=6)
domain_components = st.builds(
    lambda a, mid, b: a + mid + b, alnum_runs, st.text(ALNUM + "-", max_size=3), alnum_runs
)
registries = st.one_of(
    st.none(),
    st.sampled_from(["docker.io", "index.docker.io", "localhost", "localhost:5000", "gcr.io", "[::1]:5000"]),
    st.builds(
        lambda parts, port: ".".join(parts) + (f":{port}" if port is not None else ""),
        st.lists(domain_components, min_size=2, max_size=3),
        st.none() | st.integers(1, 65535),
    ),
)
separators = st.sampled_from([".", "_", "__", "-", "--"])
path_components = st.builds(
    lambda first, rest: first + "".join(sep + run for sep, run in rest),
    alnum_runs,
    st.lists(st.tuples(separators, alnum_runs), max_size=2),
)
paths = st.lists(path_components, min_size=1, max_size=3).map("/".join)
TAG_START = ALNUM + "ABCXYZ_"
tags = st.none() | st.builds(
    str.__add__, st.text(TAG_START, min_size=1, max_size=1), st.text(TAG_START + ".-", max_size=12)
)
digests = st.none() | st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: "sha256:" + h)


@st.composite
def references(draw: st.DrawFn) -> tuple[str, str | None, str, str | None, str | None]:
    registry, path, tag, digest = draw(registries), draw(paths), draw(tags), draw(digests)
    if registry is None:
        # Without a registry, a first component that looks like a host would be read as one.
        first = path.split("/")[0]
        assume("." not in first and first != "localhost")
    text = (f"{registry}/" if registry else "") + path
    assume(len(text) <= 255)
    text += (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    return text, registry, path, tag, digest


@settings(max_examples=200)
@given(references())
def test_valid_references_round_trip_through_str_and_familiar(
    case: tuple[str, str | None, str, str | None, str | None],
) -> None:
    text, registry, path, tag, digest = case
    ref = ImageReference.parse(text)
    assert ImageReference.parse(str(ref)) == ref
    assert ImageReference.parse(ref.familiar) == ref
    assert (ref.tag, ref.digest) == (tag, digest)
    if registry in (None, "docker.io", "index.docker.io"):
        assert ref.registry == "docker.io"
        assert ref.repository == (path if "/" in path else f"library/{path}")
    else:
        assert (ref.registry, ref.repository) == (registry, path)


@settings(max_examples=300)
@given(st.text(max_size=40) | st.from_regex(r"[a-zA-Z0-9./:@_-]{1,40}", fullmatch=True))
def test_arbitrary_text_either_parses_canonically_or_raises_a_clear_error(text: str) -> None:
    try:
        ref = ImageReference.parse(text)
    except InvalidImageReference as exc:
        assert str(exc).startswith(f"Invalid image reference {text!r}: ")
        assert str(exc).endswith(".")
    else:
        assert ImageReference.parse(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "familiar"),
    [
        ("python:3.11", "docker.io", "library/python", "3.11", "python:3.11"),
        ("python", "docker.io", "library/python", None, "python"),
        ("docker.io/library/python:3.11", "docker.io", "library/python", "3.11", "python:3.11"),
        ("index.docker.io/python", "docker.io", "library/python", None, "python"),
        ("myorg/app:v1", "docker.io", "myorg/app", "v1", "myorg/app:v1"),
        ("localhost/app", "localhost", "app", None, "localhost/app"),
        ("localhost:5000/team/app:1.0", "localhost:5000", "team/app", "1.0", "localhost:5000/team/app:1.0"),
        (
            "registry.example.com:5000/app",
            "registry.example.com:5000",
            "app",
            None,
            "registry.example.com:5000/app",
        ),
        ("gcr.io/my-project/app", "gcr.io", "my-project/app", None, "gcr.io/my-project/app"),
        ("Registry.Example/app", "Registry.Example", "app", None, "Registry.Example/app"),
        ("docker.io/my.org/app", "docker.io", "my.org/app", None, "docker.io/my.org/app"),
        # A bare host:port is a Hub image named "localhost" with tag "5000", exactly as Docker reads it.
        ("localhost:5000", "docker.io", "library/localhost", "5000", "localhost:5000"),
    ],
)
def test_parse_applies_docker_defaults(
    text: str, registry: str, repository: str, tag: str | None, familiar: str
) -> None:
    ref = ImageReference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, None)
    assert ref.familiar == familiar


def test_str_is_the_fully_qualified_form() -> None:
    ref = ImageReference.parse(f"python:3.11@{DIGEST}")
    assert str(ref) == f"docker.io/library/python:3.11@{DIGEST}"
    assert ref.name == "docker.io/library/python"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        (" python", "whitespace"),
        ("Python:3.11", "lowercase"),
        ("my app", "lowercase"),
        ("python:", "tag"),
        ("python:.hidden", "tag"),
        ("python:" + "a" * 129, "tag"),
        ("python@sha256:abc", "digest"),
        (f"python@sha512:{'a' * 128}", "digest"),
        ("python@" + DIGEST.upper(), "digest"),
        ("foo//bar", "repository"),
        ("foo/-bar", "repository"),
        ("foo/bar_", "repository"),
        ("foo/bar___baz", "repository"),
        ("-bad.host/app", "registry"),
        ("host.io:port/app", "registry"),
        ("gcr.io/", "repository"),
        ("a" * 64, "image ID"),
        ("x/" + "a" * 260, "255"),
    ],
)
def test_invalid_references_are_rejected_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidImageReference, match=r"^Invalid image reference .*\.$") as info:
        ImageReference.parse(text)
    assert reason in info.value.reason
    assert info.value.text == text


def test_direct_construction_keeps_references_canonical() -> None:
    assert ImageReference("index.docker.io", "library/python").registry == "docker.io"
    with pytest.raises(ValueError, match="needs a namespace"):
        ImageReference("docker.io", "python")
    with pytest.raises(ValueError, match="not a registry host"):
        ImageReference("gcr.io\n", "app")
    with pytest.raises(ValueError, match="not a sha256 digest"):
        ImageReference("gcr.io", "app", digest="md5:abc")


@pytest.mark.parametrize(
    ("image", "entry", "expected"),
    [
        ("python:3.11", "docker.io", True),
        ("python:3.11", "index.docker.io", True),
        ("python:3.11", "DOCKER.IO", True),
        ("python:3.11", "docker.io/library", True),
        ("myorg/app", "docker.io/library", False),
        ("gcr.io/my-project/app", "gcr.io", True),
        ("gcr.io/my-project/app", "gcr.io/my-project", True),
        ("gcr.io/my-project/app", "gcr.io/my-project/", True),
        ("gcr.io/my-project/app", "gcr.io/my-project/app", True),
        ("gcr.io/my-projectx/app", "gcr.io/my-project", False),
        ("gcr.io/my-project/app", "eu.gcr.io", False),
        ("registry.example.com:5000/app", "registry.example.com:5000", True),
        ("registry.example.com:5000/app", "registry.example.com", False),
        ("registry.example.com/app", "registry.example.com:5000", False),
        # An entry that is not host[/path] fails closed instead of matching by accident.
        ("python", "https://docker.io", False),
        ("python", "", False),
        ("gcr.io/a/b", "gcr.io/A", False),
    ],
)
def test_matches_registry_on_host_and_path_segments(image: str, entry: str, expected: bool) -> None:
    assert ImageReference.parse(image).matches_registry(entry) is expected
