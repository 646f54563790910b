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
        assert 1 <= exc.line_number <= text.count("\n") + 1
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
        ("A=1\n\nFOO BAR\n", 3, "Line 3: there is no '=': each variable is NAME=value on a line of its own."),
        ("# ok\nexport FOO\n", 2, "Line 2: there is no '='"),
        ("1ABC=x", 1, "Line 1: the text before '=' is not a variable name (it starts with a digit)"),
        ("MY-KEY=x", 1, "Line 1: the text before '=' is not a variable name (it contains '-')"),
        ("MY KEY=x", 1, "Line 1: the text before '=' is not a variable name (it contains a space)"),
        ("CAFÉ=x", 1, "Line 1: the text before '=' is not a variable name (it contains a character other"),
        ("=x", 1, "Line 1: the text before '=' is not a variable name (it is empty)"),
        ("A=1\nB=2\nA=3\n", 3, "Line 3: 'A' is already set on line 1."),
        ('A="open', 1, "Line 1: the double-quoted value of 'A' is not closed."),
        ('A="ends in backslash\\"', 1, "Line 1: the double-quoted value of 'A' is not closed."),
        ("A='open", 1, "Line 1: the single-quoted value of 'A' is not closed."),
        ('A="x" y', 1, "Line 1: there is text after the closing quote of 'A'; only a '#' comment may follow"),
        ("A='x'y", 1, "Line 1: there is text after the closing quote of 'A'"),
        (
            'A="C:\\Users"',
            1,
            "Line 1: the double-quoted value of 'A' has an unknown escape at its character 3",
        ),
        ("A=x\x00y", 1, "Line 1: the line contains a NUL byte."),
    ],
)
def test_errors_name_the_line_and_the_reason(text: str, line_number: int, message: str) -> None:
    with pytest.raises(EnvSyntaxError) as info:
        parse_env_text(text)
    assert info.value.line_number == line_number
    assert str(info.value).startswith(message)
    assert isinstance(info.value, ValueError)


# A malformed line's value must never reach the message: it may be a secret typed on the wrong line.
MARK = "Zq8vX"
malformed_with_mark = st.sampled_from(
    [
        "DB_PASSWORD {mark}",  # no '='
        "{mark} DB_PASSWORD=x",  # the value typed before the name
        "{mark}-TOKEN=x",
        "9{mark}=x",
        'A="{mark}',  # unclosed
        "A='{mark}",
        'A="x" {mark}',  # text after the quote
        'A="{mark}\\q{mark}"',  # unknown escape
        "A={mark}\x00",
        "A=1\nA={mark}",  # duplicate
    ]
)


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(keys, st.text(st.characters(blacklist_characters="\x00\n\r"), max_size=12)), max_size=4
    ),
    malformed_with_mark,
    st.text(st.characters(whitelist_categories=("L", "N")), min_size=0, max_size=8),
)
def test_no_error_quotes_what_the_line_holds(good: list[tuple[str, str]], bad: str, noise: str) -> None:
    mark = MARK + noise
    text = "".join(f"{key}='{value}'\n" for key, value in good if "'" not in value) + bad.format(mark=mark)
    with pytest.raises(EnvSyntaxError) as info:
        parse_env_text(text)
    assert MARK not in str(info.value)
    assert MARK not in repr(info.value) and MARK not in repr(vars(info.value))


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
