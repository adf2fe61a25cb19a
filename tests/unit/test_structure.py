"""The shape the code promises (docs/DESIGN.md): protocol/ is pure, no module reaches for
another's private names, only the state module reads or writes the state record's fields,
and the README names every runtime dependency. Read from the source, never run."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

from certfleet.gcpause import paused

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "certfleet"

# What protocol/ may import: computation only (no files, sockets, processes, clocks read
# behind the caller's back), so every line there is a pure function of its arguments.
PURE_STDLIB = {"__future__", "base64", "binascii", "collections", "dataclasses", "datetime",
               "email", "enum", "functools", "hashlib", "hmac", "itertools", "json", "math",
               "operator", "re", "typing"}
FORBIDDEN_CALLS = {"open", "print", "input"}


def modules(folder: Path = SRC) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def tree(path: Path) -> ast.Module:
    """The module's syntax tree, parsed with the collector paused: a collection during the
    parse can run the finalizer of an asyncio task an earlier test left behind, and on
    CPython 3.11.7 that breaks the parser's depth count ("SystemError: AST constructor
    recursion depth mismatch")."""
    with paused():
        return ast.parse(path.read_text(), str(path))


def test_protocol_imports_only_pure_standard_modules() -> None:
    found = []
    for path in modules(SRC / "protocol"):
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            elif isinstance(node, ast.ImportFrom) and node.level > 1:
                names = ["." * node.level + (node.module or "")]  # out of protocol/
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                    and node.func.id in FORBIDDEN_CALLS:
                found.append(f"{path.name}:{node.lineno}: calls {node.func.id}()")
                continue
            else:
                continue  # `from .x import y` stays inside protocol/
            found += [f"{path.name}:{node.lineno}: imports {name}" for name in names
                      if name.split(".")[0] not in PURE_STDLIB]
    assert found == []


def test_no_module_imports_a_private_name_of_another() -> None:
    found = []
    for path in modules():
        for node in ast.walk(tree(path)):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "")
                                                     .startswith("certfleet")):
                found += [f"{path.relative_to(SRC)}:{node.lineno}: {alias.name}"
                          for alias in node.names
                          if alias.name.startswith("_") and alias.name != "__version__"]
    assert found == []


def test_only_the_state_module_touches_the_state_records_fields() -> None:
    """The record's JSON fields are read and written in state.py alone; everyone else asks
    ``CertState`` (a dict subscript or ``.get`` with one of its field names elsewhere is a
    second owner). Status rows are their own dicts: their keys are allowed there."""
    from certfleet.state import CertState

    fields = set(_every_field(CertState))
    found = []
    for path in modules():
        if path.name == "state.py" or path.relative_to(SRC).as_posix() == "cli/status.py":
            continue
        for node in ast.walk(tree(path)):
            key = None
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                key = node.slice.value
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ("get", "pop", "setdefault") and node.args \
                    and isinstance(node.args[0], ast.Constant):
                key = node.args[0].value
            if key in fields:
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: {key!r}")
    assert found == []


def _every_field(cls: type) -> list[str]:
    """The top-level keys of a state record with every field set, from the module itself."""
    source = (SRC / "state.py").read_text()
    block = source[source.index("    def to_json(self) -> dict[str, Any]:"):]
    block = block[:block.index("    @classmethod")]
    keys = re.findall(r'data\["([a-z_]+)"\]', block)
    assert len(keys) >= 7, keys  # last, backoff, ari, order, deploy, alarm_at, revocation
    return keys


def test_the_readme_names_every_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Dependencies"):]
    section = section[:section.index("\n## ", 1)]
    names = [re.split(r"[<>=!~\[ ;]", spec, maxsplit=1)[0] for spec in project["dependencies"]]
    assert names
    assert [n for n in names if f"`{n}`" not in section] == []
    assert sys.version_info >= (3, 11)
    assert "Python 3.11+" in section
