"""Figure 2 of two trees side by side: `certfleet issue NAME` (account registered, Retry-After
0) of tree A, then of tree B, then A again ..., on one local Pebble, and the ratio A/B pair
by pair. On a shared machine whose speed drifts from one minute to the next, the pairwise
ratio says what a change did where two separate runs of bench/figures.py cannot.

    .venv/bin/python bench/issue_pair.py TREE_A TREE_B [--runs 9]

TREE_A and TREE_B are checkouts (``git worktree add /tmp/before REV``). Each issue is a
whole ``python -m certfleet`` process with ``PYTHONPATH=TREE/src``, after one unmeasured
issue of each; the account is registered by tree A.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from _lab import NO_RETRY_AFTER, BenchError, Tree, lab_config, pebble, write_domains


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tree_a", type=Path)
    parser.add_argument("tree_b", type=Path)
    parser.add_argument("--runs", type=int, default=9, help="measured issues of each tree")
    args = parser.parse_args(argv)
    try:
        trees = {"A": Tree(args.tree_a), "B": Tree(args.tree_b)}
        for tree in trees.values():
            tree.check()
    except BenchError as exc:
        print(f"issue_pair: {exc}", file=sys.stderr)
        return 2
    times: dict[str, list[float]] = {key: [] for key in trees}
    with tempfile.TemporaryDirectory(prefix="issue-pair-") as tmp:
        work = Path(tmp)
        with pebble(work / "pebble", NO_RETRY_AFTER) as lab:
            config = str(lab_config(work / "certfleet.toml", lab, work / "state",
                                    write_domains(work / "domains.txt", [])))
            trees["A"].cli("account", "register", "--config", config, cwd=work).expect(0)
            for i in range(-1, args.runs):  # -1: the unmeasured first issue of each tree
                for key, tree in trees.items():
                    proc = tree.cli("issue", f"{key.lower()}{i + 1}.pair.example", "--config",
                                    config, cwd=work).expect(0)
                    if i >= 0:
                        times[key].append(proc.wall)
    for key, tree in trees.items():
        found = times[key]
        print(f"{key} {tree.root}: median {statistics.median(found):.3f} s, "
              f"min {min(found):.3f} s, max {max(found):.3f} s")
    ratios = [a / b for a, b in zip(times["A"], times["B"], strict=True)]
    print(f"A/B pair by pair: median {statistics.median(ratios):.3f}, min {min(ratios):.3f}, "
          f"max {max(ratios):.3f} ({args.runs} pairs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
