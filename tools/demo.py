"""`make demo`: run certfleet against a local Pebble and show what it did.

Starts Pebble and pebble-challtestsrv on loopback (tools/pebble_lab.py), issues two
certificates with certfleet's built-in http-01 responder, shows `certfleet status` and the
files written, runs again to show "not due" (exit 2), and stops exactly what it started.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from pebble_lab import PebbleLab

REPO = Path(__file__).resolve().parent.parent
STATE = REPO / "demo-state"
CERTFLEET = str(Path(sys.executable).parent / "certfleet")


def run(env: dict[str, str], *args: str, expect: int) -> None:
    print(f"\n$ certfleet {' '.join(args)}", flush=True)
    rc = subprocess.call([CERTFLEET, *args], env=env)
    print(f"[exit {rc}]", flush=True)
    if rc != expect:
        raise SystemExit(f"demo: expected exit {expect}, got {rc}")


def show_files(root: Path) -> None:
    print(f"\n$ find {root.relative_to(REPO)}/certs", flush=True)
    for path in sorted((root / "certs").rglob("*")):
        info = path.lstat()
        rel = path.relative_to(root)
        if stat.S_ISLNK(info.st_mode):
            print(f"  {rel} -> {os.readlink(path)}")
        elif stat.S_ISREG(info.st_mode):
            print(f"  {rel}  ({stat.filemode(info.st_mode)}, {info.st_size} bytes)")


def main() -> int:
    shutil.rmtree(STATE, ignore_errors=True)
    with PebbleLab(REPO / ".cache" / "demo-pebble") as lab:
        print(f"Pebble: {lab.directory_url} (validates http-01 on port {lab.http_port})")
        env = dict(os.environ, CERTFLEET_STATE_DIR=str(STATE),
                   CERTFLEET_DIRECTORY=lab.directory_url, CERTFLEET_CA_BUNDLE=str(lab.ca_bundle))
        listen = ["--http-listen", f"127.0.0.1:{lab.http_port}"]
        run(env, "issue", "-v", "www.example.com", "example.com", "--contact",
            "hostmaster@example.com", *listen, expect=0)
        run(env, "issue", "www.example.net", "--key-type", "rsa2048", *listen, expect=0)
        run(env, "status", expect=0)
        show_files(STATE)
        run(env, "issue", "www.example.com", "example.com", *listen, expect=2)
    print("\ndemo: done; Pebble stopped. State kept in demo-state/.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
