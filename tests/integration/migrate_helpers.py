"""Helpers for the import tests: fingerprint a source tree, read a stored serial."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from cryptography import x509

from tests.cli import run_main


def tree_state(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry below ``root`` (and ``root`` itself): type, mode, owner, size, mtime, and
    the content's hash or the link's target. Equal before and after means untouched."""
    found: dict[str, tuple[object, ...]] = {}
    for folder, dirs, files in os.walk(root):
        for name in [".", *dirs, *files]:
            path = Path(folder) / name
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                what: object = os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                what = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                what = None  # a directory (its entries are listed), a FIFO (never read)
            found[str(path.relative_to(root))] = (
                stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode), info.st_uid,
                info.st_size, info.st_mtime_ns, what)
    return found


def serial_of(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def status_rows(config: Path) -> dict[str, dict[str, object]]:
    rc, out, err = run_main(["status", "--config", str(config), "--json"])
    assert rc == 0, out + err
    return {row["name"]: row for row in json.loads(out)}


def import_cli(*argv: str) -> tuple[int, str, str]:
    """``certfleet import ...``: (exit code, stdout, stderr), shown when a test fails."""
    rc, out, err = run_main(["import", *argv])
    print(f"$ certfleet import {' '.join(argv)}\n{out}{err}[exit {rc}]")
    return rc, out, err
