"""The single-file build: `make zipapp` makes a .pyz that the system Python runs with nothing
installed, and the demo passes with it against Pebble, in an environment as empty as
``env -i`` leaves it.

The zipapp is built here, from the tree under test, into tmp_path (about 20 s with pip's
cache warm): a prebuilt dist/certfleet.pyz could be stale, and a missing one must not
skip the test. Building needs PyPI (shiv and the dependencies' wheels), as `make venv`
does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import missing, require_pebble

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
SYSTEM_PYTHON = "/usr/bin/python3"
CLEAN_PATH = "/usr/bin:/bin"

_WHERE = """
import json, sys
import asyncssh, certfleet, cryptography, dns, idna
print(json.dumps({"path": sys.path, "version": list(sys.version_info[:2]), "files": {
    m.__name__: m.__file__ for m in (asyncssh, certfleet, cryptography, dns, idna)}}))
"""


def _system_python() -> None:
    found = Path(SYSTEM_PYTHON).exists() and subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; sys.exit(sys.version_info < (3, 11))"],
        check=False).returncode == 0
    if not found:
        message = f"{SYSTEM_PYTHON} (3.11 or later) is needed to run the zipapp"
        missing(message)


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _system_python()
    out = tmp_path_factory.mktemp("zipapp") / "certfleet.pyz"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(["make", "-C", str(REPO), "zipapp", f"PYZ={out}",
                           f"SYSTEM_PYTHON={SYSTEM_PYTHON}"],
                          capture_output=True, text=True, check=False, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert out.is_file()
    return out


def clean_env(home: Path, **more: str) -> dict[str, str]:
    """What ``env -i PATH=/usr/bin:/bin HOME=...`` leaves: no venv, no PYTHONPATH."""
    return {"PATH": CLEAN_PATH, "HOME": str(home), **more}


def test_the_system_python_runs_it_with_nothing_installed(pyz: Path, tmp_path: Path) -> None:
    proc = subprocess.run([SYSTEM_PYTHON, str(pyz), "--version"], env=clean_env(tmp_path),
                          capture_output=True, text=True, check=False, timeout=120)
    assert (proc.returncode, proc.stdout) == (0, "certfleet 0.1.0\n"), proc.stderr
    # Everything comes from the zipapp (unpacked under ~/.shiv), nothing from a virtualenv
    # or the source tree, and not the system's own older cryptography either.
    proc = subprocess.run([SYSTEM_PYTHON, str(pyz), "-c", _WHERE],
                          env=clean_env(tmp_path, SHIV_INTERPRETER="1"),
                          capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    unpacked = str(tmp_path / ".shiv")
    for name, file in found["files"].items():
        assert file.startswith(unpacked), (name, file)
    assert not [p for p in found["path"] if ".venv" in p or p.startswith(str(REPO))]
    if sys.prefix != sys.base_prefix:  # the suite's own virtualenv is not on the path
        assert not [p for p in found["path"] if p.startswith(sys.prefix)]


def test_the_demo_runs_with_the_zipapp(pyz: Path, tmp_path: Path) -> None:
    require_pebble()
    work = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "demo.py"), "--workdir", str(work),
         "--certfleet", f"{SYSTEM_PYTHON} {pyz}", "--clean-env"],
        capture_output=True, text=True, timeout=300, check=False,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "2 certificates: 2 issued, deployed 4/4 targets" in out
    assert "2 certificates: 2 not due" in out
    assert (work / "web2" / "Certs" / "www.example.net" / "fullchain.pem").is_file()
    assert list((work / "home" / ".shiv").glob("certfleet.pyz_*/site-packages/certfleet"))
