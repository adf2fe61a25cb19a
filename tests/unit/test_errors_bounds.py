"""A problem document's message is one bounded line however many subproblems the CA lists
(``messages.MAX_LIST`` lets it list 1,000, each field ~300 characters: 589 KB unbounded)."""

from __future__ import annotations

from certfleet.errors import acme_problem

ERR = "urn:ietf:params:acme:error:"
URL = "https://ca.example/acme/new-order"


def _subs(n: int, size: int = 10) -> tuple[tuple[str, str, str], ...]:
    return tuple((f"n{i}.example", f"{ERR}caa", f"d{i}" + "D" * size) for i in range(n))


def test_the_first_five_are_shown_then_how_many_more() -> None:
    text = str(acme_problem(URL, f"{ERR}rejectedIdentifier", "refused", 400, _subs(7)))
    assert text == (f"{URL}: rejectedIdentifier: refused; "
                    + "; ".join(f"n{i}.example: caa: d{i}DDDDDDDDDD" for i in range(5))
                    + "; and 2 more")
    five = str(acme_problem(URL, f"{ERR}rejectedIdentifier", "refused", 400, _subs(5)))
    assert five == text.removesuffix("; and 2 more")  # five: all of them, nothing added


def test_a_thousand_long_subproblems_make_one_short_line() -> None:
    subs = tuple(("N" * 290, f"{ERR}caa", "D" * 290) for _ in range(1000))
    problem = acme_problem(URL, f"{ERR}rejectedIdentifier", "R" * 290, 400, subs)
    text = str(problem)
    assert "\n" not in text
    assert len(text) <= 2100
    shown = text.count("D" * 290)
    assert 1 <= shown <= 5
    assert text.endswith(f"; and {1000 - shown} more")
    assert len(problem.subproblems) == 1000  # all kept for code that reads them


def test_subproblems_are_cut_whole_never_inside_an_escape() -> None:
    subs = tuple(("\x1b" * 290, f"{ERR}caa", "\x07" * 290) for _ in range(20))
    text = str(acme_problem(URL, f"{ERR}malformed", "\x1b" * 290, 400, subs))
    assert "\x1b" not in text
    assert "\x07" not in text
    parts = text.split("; ")
    assert parts[-1] == f"and {20 - (len(parts) - 2)} more"
    for part in parts[1:-1]:  # each shown subproblem as safe_text makes it: cut with "..."
        assert part.endswith("\\x07" * 74 + "...")
