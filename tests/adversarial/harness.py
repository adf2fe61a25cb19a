"""Running ``certfleet issue`` against the fake CA, and the checks every hostile answer shares.

A hostile answer must end in exit code 1 and one output line, ``NAME: failed: ...``, that
names what is wrong and where (the URL or the domain), with no terminal escape in it; and
nothing may be written: the versions directory is byte for byte what it was, ``current``
still points at the version that was active, no challenge file is left in the webroot.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
from pathlib import Path

from certfleet.cli import main

from .fakeca import FakeCA

# Any C0 control but the final newline, DEL, C1 controls: none may reach a terminal.
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


class Harness:
    """One state directory and webroot, issuing ``name`` at ``ca``."""

    def __init__(self, ca: FakeCA, root: Path, name: str = "x.example") -> None:
        self.ca, self.root, self.name = ca, root, name
        self.state = root / "state"
        self.webroot = root / "webroot"
        self.webroot.mkdir(exist_ok=True)
        self.stderr = ""

    @property
    def cert_dir(self) -> Path:
        return self.state / "certs" / self.name

    def issue(self, *extra: str) -> tuple[int, str]:
        """``certfleet issue NAME`` in-process: (exit code, stdout); stderr kept aside."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["issue", self.name, *extra, "--state-dir", str(self.state),
                       "--directory", self.ca.directory_url, "--insecure-http",
                       "--webroot", str(self.webroot)])
        self.stderr = err.getvalue()
        print(f"$ certfleet issue {self.name} {' '.join(extra)}\n{out.getvalue()}"
              f"{self.stderr}[exit {rc}]")  # shown when a test fails
        return rc, out.getvalue()

    def versions(self) -> dict[str, str]:
        """Every path under versions/ (hidden temporaries too) and its content's digest."""
        found: dict[str, str] = {}
        base = self.cert_dir / "versions"
        if not base.exists():
            return found
        for path in sorted(base.rglob("*")):
            rel = str(path.relative_to(base))
            found[rel] = ("dir" if path.is_dir() else
                          hashlib.sha256(path.read_bytes()).hexdigest())
        return found

    def current(self) -> str | None:
        link = self.cert_dir / "current"
        return os.readlink(link) if link.is_symlink() else None

    def issue_good(self) -> dict[str, str]:
        """Issue a first, good certificate (version 1): the one a hostile answer must keep."""
        rc, out = self.issue()
        assert rc == 0, out
        assert self.current() == "versions/1"
        return self.versions()

    def refused(self, rc: int, out: str, *words: str, before: dict[str, str] | None = None,
                current: str | None = "versions/1") -> str:
        """The checks every hostile answer shares; returns the one line of output."""
        assert rc == 1, out
        assert out.count("\n") == 1, out
        assert out.endswith("\n"), out
        line = out[:-1]
        assert line.startswith(f"{self.name}: failed: "), line
        for word in words:
            assert word in line, (word, line)
        assert not CONTROL.search(line), repr(line)
        assert not CONTROL.search(self.stderr.replace("\n", "")), repr(self.stderr)
        assert self.current() == current
        if before is not None:
            assert self.versions() == before
        else:
            assert self.versions() == {}
        assert list(self.webroot.iterdir()) == []
        return line
