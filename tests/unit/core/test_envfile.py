from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from container_manager_core.envfile import EnvSyntaxError, format_env_text, parse_env_text

keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
awkward_values = st.sampled_from(
    [
        '"',
        "'",
        "#",
        "=",
        " ",
        "\\",
        "\n",
        "\t",
        "\r",
        "\\n",
        "a=b",
        "x # y",
        " lead",
        "trail ",
        "\u2028",
        "\x85",
    ]
)
values = st.text(st.characters(blacklist_characters="\x00"), max_size=30) | st.lists(
    awkward_values | st.text(max_size=3).filter(lambda v: "\x00" not in v), max_size=6
).map("".join)


@settings(max_examples=300)
@given(st.dictionaries(keys, values, max_size=8))
def test_format_then_parse_gives_back_the_mapping(mapping: dict[str, str]) -> None:
    assert parse_env_text(format_env_text(mapping)) == mapping


@settings(max_examples=300)
@given(
    st.text(max_size=60)
    | st.lists(st.sampled_from(["A", "=", '"', "'", "\\", "#", " ", "\n", "x"])).map("".join)
)
def test_any_text_parses_or_raises_env_syntax_error(text: str) -> None:
    try:
        parsed = parse_env_text(text)
    except EnvSyntaxError as exc:
        assert str(exc) == f"Line {exc.line_number}: {exc.reason}"
        assert exc.reason.endswith(".")
        assert exc.line == text.split("\n")[exc.line_number - 1].removesuffix("\r")
    else:
        assert parse_env_text(format_env_text(parsed)) == parsed


def test_template_with_comments_blanks_quotes_and_indentation() -> None:
    text = textwrap.dedent(
        """\
        # Database settings
        DATABASE_URL=postgres://u:p@db:5432/app?sslmode=require#frag

          export API_KEY = abc=def==
        EMPTY=
        SPACED = two words   \t
        DOUBLE="a \\"quoted\\" line\\nnext\\ttab \\\\ done"  # trailing comment
        SINGLE='literal \\n $HOME "x"'
        HASHED="#not a comment"
        QUOTED_TRAILER=" padded "#comment
        """
    )
    assert parse_env_text("    " + text.replace("\n", "\n    ")) == {
        "DATABASE_URL": "postgres://u:p@db:5432/app?sslmode=require#frag",
        "API_KEY": "abc=def==",
        "EMPTY": "",
        "SPACED": "two words",
        "DOUBLE": 'a "quoted" line\nnext\ttab \\ done',
        "SINGLE": 'literal \\n $HOME "x"',
        "HASHED": "#not a comment",
        "QUOTED_TRAILER": " padded ",
    }


def test_crlf_line_endings_and_export_named_key() -> None:
    assert parse_env_text("A=1\r\nexport=2\r\nexport B=3\r\n") == {"A": "1", "export": "2", "B": "3"}


@pytest.mark.parametrize(
    ("text", "line_number", "message"),
    [
        ("A=1\n\nFOO BAR\n", 3, "Line 3: 'FOO BAR' is not KEY=VALUE."),
        ("# ok\nexport FOO\n", 2, "Line 2: 'export FOO' is not KEY=VALUE."),
        ("1ABC=x", 1, "Line 1: '1ABC' is not a variable name"),
        ("MY-KEY=x", 1, "Line 1: 'MY-KEY' is not a variable name"),
        ("=x", 1, "Line 1: '' is not a variable name"),
        ("A=1\nB=2\nA=3\n", 3, "Line 3: 'A' is already set on line 1."),
        ('A="open', 1, "Line 1: the double-quoted value of 'A' is not closed."),
        ('A="ends in backslash\\"', 1, "Line 1: the double-quoted value of 'A' is not closed."),
        ("A='open", 1, "Line 1: the single-quoted value of 'A' is not closed."),
        ('A="x" y', 1, "Line 1: unexpected text 'y' after the quoted value of 'A'."),
        ("A='x'y", 1, "Line 1: unexpected text 'y' after the quoted value of 'A'."),
        ('A="C:\\Users"', 1, "Line 1: unknown escape '\\\\U' in the value of 'A'"),
        ("A=x\x00y", 1, "Line 1: the line contains a NUL byte."),
    ],
)
def test_errors_name_the_line_and_the_reason(text: str, line_number: int, message: str) -> None:
    with pytest.raises(EnvSyntaxError) as info:
        parse_env_text(text)
    assert info.value.line_number == line_number
    assert info.value.line == text.split("\n")[line_number - 1]
    assert str(info.value).startswith(message)
    assert isinstance(info.value, ValueError)


def test_format_quotes_only_when_needed() -> None:
    text = format_env_text({"URL": "http://x/#a=b", "PAD": " x", "NL": "a\nb", "Q": "'x'", "E": ""})
    assert text == 'URL=http://x/#a=b\nPAD=" x"\nNL="a\\nb"\nQ="\'x\'"\nE=\n'


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"BAD-NAME": "x"}, "'BAD-NAME' is not a variable name"),
        ({"A\n": "x"}, "'A\\\\n' is not a variable name"),
        ({"A": "x\x00"}, "The value of 'A' contains a NUL byte."),
    ],
)
def test_format_refuses_what_cannot_be_parsed_back(mapping: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        format_env_text(mapping)
