"""Every test the documentation names exists: the file, and the test function in it.

SECURITY.md's promise table, the DESIGN notes, the manual pages and the docstrings outside
tests/ name tests as proof of what they say; a renamed or deleted test would leave a claim
that nothing checks. ``tools/doc_refs.py`` finds the references (its docstring lists the
forms); here each must name a test that exists, and each mutation of
``tools/claims_check.py`` must use tests that its row of the table names.
"""

from __future__ import annotations

import pytest
from claims_rows import ROWS
from doc_refs import Reference, all_references, missing, promise_table, references


def test_every_test_the_docs_name_exists() -> None:
    found, orphans = all_references()
    faults = [f"{ref}: {why}" for ref in found if (why := missing(ref))]
    assert not faults, "\n".join(faults)
    assert not orphans, "test names with no file before them:\n" + "\n".join(orphans)


def test_the_docs_are_read() -> None:
    # The check above is only as good as the parser: it must find what the docs name.
    found, _ = all_references()
    security = [ref for ref in found if ref.where.startswith("SECURITY.md:")]
    assert len(security) > 100
    assert Reference("", "unit/test_http_server.py", "test_host_matches").test_id in \
        {ref.test_id for ref in security}   # a name in a list after its file
    assert "integration/test_secrets.py::test_symlink_planted_at_state_json_is_not_followed" \
        in {ref.test_id for ref in security}   # a `…::` continuation resolved to its file
    assert {ref.where.partition(":")[0] for ref in found} >= {
        "SECURITY.md", "docs/DESIGN.md", "docs/scheduling.md", "pyproject.toml"}


@pytest.mark.parametrize(("text", "expected"), [
    ("see `unit/test_store.py::test_nowhere`", "unit/test_store.py::test_nowhere"),
    ("see tests/unit/test_nowhere.py", "unit/test_nowhere.py"),
    ("`unit/test_store.py`, `…::test_nowhere`", "unit/test_store.py::test_nowhere"),
    ("`unit/test_store.py` (`test_nowhere`)", "unit/test_store.py::test_nowhere"),
    ("`integration/test_fleet.py` and `test_nowhere.py`", "integration/test_nowhere.py"),
    ("`tests/nowhere/`", "nowhere/"),
])
def test_a_bogus_reference_is_a_fault(text: str, expected: str) -> None:
    refs, orphans = references("doc.md", text)
    assert not orphans
    assert [ref.test_id for ref in refs if missing(ref)] == [expected]


def test_a_bare_name_without_a_file_is_an_orphan() -> None:
    _, orphans = references("doc.md", "`unit/test_store.py` here.\n\nand `test_crash` there")
    assert orphans == ["doc.md:3: test_crash"]


def test_a_real_reference_passes() -> None:
    refs, _ = references("doc.md", "| 1 | `unit/test_store.py`, `…::test_crash_leftovers_"
                                   "are_swept` | `faults/test_kill9.py` |")
    assert [ref.test_id for ref in refs] == [
        "unit/test_store.py", "unit/test_store.py::test_crash_leftovers_are_swept",
        "faults/test_kill9.py"]
    assert [ref for ref in refs if missing(ref)] == []


def test_the_promise_table_has_every_promise_and_tests_in_every_row() -> None:
    rows = promise_table()
    assert {row.promise for row in rows} == set(range(1, 14))
    assert all(row.tests for row in rows), [row.line for row in rows if not row.tests]


def test_each_mutation_uses_tests_its_row_names() -> None:
    """``tools/claims_check.py`` shows each row's tests fail without the mechanism; the
    tests it runs for a row must be ones the row names, and every row is checked."""
    table = {(row.promise, row.title): row for row in promise_table()}
    assert {(row.promise, row.title) for row in ROWS} == set(table)
    faults = [f"{row.promise} {row.title}: {test}" for row in ROWS for mutation in row.mutations
              for test in mutation.tests if not table[(row.promise, row.title)].covers(test)]
    assert not faults, "tests the row does not name:\n" + "\n".join(faults)
    assert all(row.mutations for row in ROWS)
