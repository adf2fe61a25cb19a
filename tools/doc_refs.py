"""The tests the documentation names, found by reading it, and whether each exists.

SECURITY.md's promise table, the DESIGN notes, the manual pages and the docstrings of src/,
tools/, bench/, scripts/ and contrib/ name tests as proof of what they say. The forms
recognized (paths relative to ``tests/``, with or without the leading ``tests/``):

    unit/test_store.py                     a file of tests/
    unit/test_store.py::test_name          a test function in it
    `…::test_name`                         another function of the file named last
    `test_name`                            the same, in backticks (a list after a file)
    `test_other.py`                        a file in the directory of the file named last
    tests/unit/                            a directory

"The file named last" is looked up within one paragraph or one table row, so a bare name
never borrows a file from an unrelated sentence; a bare name with no file before it is
reported as an orphan. A name in double backticks (``test_id``, reStructuredText in a
docstring) is code, not a reference. A function is a module-level test or ``Class::method``.

The test modules are read too, for paths only (their backquoted names are their own
functions). Used by ``tests/unit/test_docs_claims.py`` (every reference must exist) and by
``tools/claims_check.py`` (the tests of each row of the promise table). Reads files only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
TIERS = ("unit", "integration", "adversarial", "faults")

_PATH = rf"(?:tests/)?(?:{'|'.join(TIERS)})/\w+\.py"
_TOKEN = re.compile(
    rf"(?P<path>{_PATH})(?:::(?P<pfunc>\w+(?:::\w+)?))?"   # unit/test_x.py[::test_y]
    r"|(?:…|\.\.\.)::(?P<cont>\w+(?:::\w+)?)"              # …::test_y
    r"|(?<!`)`(?P<bfile>test_\w+\.py)`(?!`)"                # `test_x.py`
    r"|(?<!`)`(?P<bfunc>test_\w+)`(?!`)"                    # `test_y`, not ``test_y``
    r"|(?<![\w/.])(?P<dir>tests/\w+/)(?![\w/])"            # tests/unit/
)
_ROW = re.compile(r"^\|\s*(\d+)\s*\|")
_CLASS = re.compile(r"class (Test\w*)\b")
_DEF = re.compile(r"(\s*)(?:async\s+)?def (test_\w+)\(")


@dataclass(frozen=True)
class Reference:
    where: str           # README.md:12
    file: str            # unit/test_store.py (relative to tests/), or a directory ending in /
    function: str = ""   # test_name, or Class::method; empty for a whole file

    @property
    def test_id(self) -> str:
        """As pytest takes it, relative to ``tests/``."""
        return f"{self.file}::{self.function}" if self.function else self.file

    def __str__(self) -> str:
        return f"{self.where}: {self.test_id}"


def documents() -> list[Path]:
    """The files whose claims are checked: the docs and every file outside tests/ that
    may name a test (docstrings, comments, build files)."""
    found = [ROOT / "README.md", ROOT / "SECURITY.md", ROOT / "Makefile",
             ROOT / "pyproject.toml"]
    found += sorted((ROOT / "docs").glob("*.md"))
    found += sorted((ROOT / "mutation").glob("*.md"))
    for tree in ("src", "tools", "bench", "scripts", "contrib"):
        found += sorted(p for p in (ROOT / tree).rglob("*")
                        if p.is_file() and "__pycache__" not in p.parts)
    return [p for p in found if p != Path(__file__).resolve()]  # its examples name nothing


def blocks(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each paragraph, each table row on its own."""
    found: list[tuple[int, str]] = []
    start, lines = 0, []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("|"):
            if lines:
                found.append((start, "\n".join(lines)))
            lines = []
            if line.strip():
                found.append((number, line))
            continue
        if not lines:
            start = number
        lines.append(line)
    if lines:
        found.append((start, "\n".join(lines)))
    return found


def references(name: str, text: str, *, bare: bool = True) -> tuple[list[Reference], list[str]]:
    """The test references in a document, and the bare names no file precedes. Without
    ``bare`` (a test module's own docstrings, whose backquoted names are its own
    functions), only paths count."""
    found: list[Reference] = []
    orphans: list[str] = []
    for first, block in blocks(text):
        if ("test" if bare else "/test_") not in block:   # most paragraphs: nothing to find
            continue
        refs, lost = _in_block(f"{name}:", first, block, bare)
        found += refs
        orphans += lost
    return found, orphans


def _in_block(prefix: str, first: int, block: str,
              bare: bool = True) -> tuple[list[Reference], list[str]]:
    found: list[Reference] = []
    orphans: list[str] = []
    current = ""
    for match in _TOKEN.finditer(block):
        where = f"{prefix}{first + block.count(chr(10), 0, match.start())}"
        if not bare and not match["path"]:
            continue
        if match["dir"]:
            found.append(Reference(where, match["dir"].removeprefix("tests/")))
        elif match["path"]:
            current = match["path"].removeprefix("tests/")
            found.append(Reference(where, current, match["pfunc"] or ""))
        elif match["bfile"]:
            if not current:
                orphans.append(f"{where}: {match['bfile']}")
                continue
            current = f"{current.rpartition('/')[0]}/{match['bfile']}"
            found.append(Reference(where, current))
        else:
            function = match["cont"] or match["bfunc"]
            if not current:
                orphans.append(f"{where}: {function}")
                continue
            found.append(Reference(where, current, function))
    return found, orphans


@cache
def functions_of(file: str) -> frozenset[str]:
    """The test functions of a test file: ``test_x`` and ``TestClass::test_x`` (read line
    by line, not parsed: this runs in the unit tier, over the largest test files)."""
    names: set[str] = set()
    cls = ""
    for line in (TESTS / file).read_text().splitlines():
        if (match := _CLASS.match(line)) is not None:
            cls = match[1]
        elif (match := _DEF.match(line)) is not None:
            indented = bool(match[1])
            if indented and cls:
                names.add(f"{cls}::{match[2]}")
            elif not indented:
                names.add(match[2])
        elif line and not line[0].isspace() and not line.startswith(("@", ")", "#")):
            cls = ""
    return frozenset(names)


def missing(reference: Reference) -> str | None:
    """Why a reference names nothing, or None when what it names exists."""
    path = TESTS / reference.file
    if reference.file.endswith("/"):
        return None if path.is_dir() else "no such directory"
    if not path.is_file():
        return "no such file"
    if reference.function and reference.function not in functions_of(reference.file):
        return f"no test {reference.function} in it"
    return None


@cache
def all_references() -> tuple[list[Reference], list[str]]:
    """Every reference in every document and test module, and every orphan."""
    found: list[Reference] = []
    orphans: list[str] = []
    modules = [p for p in sorted(TESTS.rglob("*.py")) if p.name != "test_docs_claims.py"]
    for path in [*documents(), *modules]:
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        refs, lost = references(str(path.relative_to(ROOT)), text,
                                bare=not path.is_relative_to(TESTS))
        found += refs
        orphans += lost
    return found, orphans


@dataclass(frozen=True)
class TableRow:
    """One row of SECURITY.md's promise → mechanism → tests table."""

    line: int
    promise: int
    title: str
    tests: tuple[Reference, ...]

    def covers(self, test_id: str) -> bool:
        """Whether ``test_id`` (``file`` or ``file::function[param]``) is one this row
        names: the file itself, or a function it names, or any function of a file it names
        whole."""
        file, _, function = test_id.partition("::")
        function = function.partition("[")[0]
        for ref in self.tests:
            if ref.file == file and (not ref.function or ref.function == function):
                return True
        return False


def promise_table(text: str | None = None) -> list[TableRow]:
    """The rows of SECURITY.md's table, in order."""
    if text is None:
        text = (ROOT / "SECURITY.md").read_text()
    rows: list[TableRow] = []
    for number, line in enumerate(text.splitlines(), 1):
        match = _ROW.match(line)
        if match is None:
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        refs, _ = _in_block("SECURITY.md:", number, cells[-1])
        rows.append(TableRow(number, int(match[1]), cells[1], tuple(refs)))
    return rows
