"""`make demo` works for an ordinary user: Pebble is all it needs, no root, no service."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_pebble

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_the_main_job_as_an_unprivileged_user(tmp_path: Path) -> None:
    require_pebble()
    work = tmp_path / "demo"
    argv = [sys.executable, str(REPO / "tools" / "demo.py"), "--workdir", str(work)]
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    if os.geteuid() == 0:  # as root, become nobody: the demo must not need root
        if not shutil.which("setpriv"):
            pytest.fail("setpriv (util-linux) is needed to drop root for this test")
        nobody = pwd.getpwnam("nobody")
        tmp_path.chmod(0o755)
        for parent in tmp_path.parents:
            if parent.stat().st_mode & 0o005 != 0o005:
                parent.chmod(parent.stat().st_mode | 0o005)
        os.chown(tmp_path, nobody.pw_uid, nobody.pw_gid)
        # The suite's interpreter may live where nobody can read it (a root-only pyenv):
        # nobody runs the system's Python 3.11 with the same packages on its path.
        python = shutil.which("python3.11", path="/usr/bin:/usr/local/bin") or "/usr/bin/python3"
        site = next(p for p in sys.path if p.endswith("site-packages"))
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), site])
        argv = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                "--clear-groups", "--", python, *argv[1:]]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False,
                          env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "www.example.com: issued (expires " in out
    assert "2 certificates: 2 issued, deployed 4/4 targets" in out
    assert "2 certificates: 2 not due" in out
    assert (work / "web2" / "Certs" / "www.example.net" / "fullchain.pem").is_file()
