"""Read the parts of a Markdown document the reference tests check: fences, inline code, tables."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DOCS_DIR = Path(__file__).resolve().parent
DOCUMENTS = ("INSTALL.md", "API.md", "DOCKER.md")

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,})(?P<info>[^`]*)$")
_INVISIBLE = re.compile(r"^\s*<!--\s*invisible-code-block:\s*(?P<lang>\w+)\s*$")
_HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<title>.+?)\s*$")
_TABLE_MARKER = re.compile(r"^\s*<!--\s*table:\s*(?P<name>[^>]+?)\s*-->\s*$")
_INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


@dataclass(frozen=True)
class Block:
    """One fenced (or invisible) code block."""

    document: str
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    before: str  # the nearest non-blank line above the fence
    section: str  # the ``##`` heading the block is under
    subsection: str  # the nearest heading of any level above the block
    invisible: bool = False

    @property
    def where(self) -> str:
        return f"{self.document}:{self.line}"

    @property
    def is_doctest(self) -> bool:
        return self.text.lstrip().startswith(">>>")

    @property
    def python_source(self) -> str:
        """Return the code of a Python block, with doctest prompts removed and output dropped."""
        if not self.is_doctest:
            return self.text
        lines = []
        for line in self.text.splitlines():
            stripped = line.strip()
            if stripped[:4] in (">>> ", "... ") or stripped in (">>>", "..."):
                lines.append(stripped[4:])
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Document:
    name: str
    text: str
    blocks: tuple[Block, ...]
    prose: str  # the text outside code blocks and HTML comments
    tables: dict[str, list[dict[str, str]]]
    headings: tuple[tuple[int, str], ...]  # (level, title)

    def inline_code(self) -> list[str]:
        return _INLINE.findall(self.prose)


def path_of(name: str) -> Path:
    return DOCS_DIR / name


@cache
def load(name: str) -> Document:
    """Parse one document of ``docs/``."""
    text = path_of(name).read_text()
    lines = text.splitlines()
    blocks: list[Block] = []
    prose: list[str] = []
    tables: dict[str, list[dict[str, str]]] = {}
    headings: list[tuple[int, str]] = []
    section = subsection = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        invisible = _INVISIBLE.match(line)
        if fence or invisible:
            start = i
            body: list[str] = []
            i += 1
            if fence:
                indent = fence.group("indent")
                while i < len(lines) and not re.match(rf"^\s*{fence.group('fence')}`*\s*$", lines[i]):
                    body.append(lines[i].removeprefix(indent))
                    i += 1
                lang = fence.group("info").strip()
            else:
                while i < len(lines) and lines[i].strip() != "-->":
                    body.append(lines[i])
                    i += 1
                lang = invisible.group("lang") if invisible else ""
            before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
            blocks.append(
                Block(
                    document=name,
                    line=start + 1,
                    lang=lang,
                    text="\n".join(body) + "\n",
                    before=before.strip(),
                    section=section,
                    subsection=subsection,
                    invisible=bool(invisible),
                )
            )
            i += 1
            continue
        heading = _HEADING.match(line)
        if heading:
            level = len(heading.group("hashes"))
            headings.append((level, heading.group("title")))
            subsection = heading.group("title")
            if level <= 2:
                section = heading.group("title")
        marker = _TABLE_MARKER.match(line)
        if marker:
            rows, i = _table(lines, i + 1)
            tables[marker.group("name")] = rows
            continue
        prose.append(line)
        i += 1
    return Document(
        name=name,
        text=text,
        blocks=tuple(blocks),
        prose=_COMMENT.sub("", "\n".join(prose)),
        tables=tables,
        headings=tuple(headings),
    )


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table(lines: list[str], i: int) -> tuple[list[dict[str, str]], int]:
    """Read the Markdown table starting at line ``i`` (blank lines before it are skipped)."""
    while i < len(lines) and not lines[i].strip():
        i += 1
    header = _cells(lines[i])
    i += 2  # the header and the |---| separator
    rows = []
    while i < len(lines) and lines[i].lstrip().startswith("|"):
        rows.append(dict(zip(header, _cells(lines[i]), strict=True)))
        i += 1
    return rows, i


def unquote(cell: str) -> str:
    """Return a table cell's inline-code content (``"`name`"`` -> ``"name"``), else the cell."""
    match = re.fullmatch(r"`([^`]+)`", cell.strip())
    return match.group(1) if match else cell.strip()


def all_blocks() -> list[Block]:
    return [block for name in DOCUMENTS for block in load(name).blocks]
