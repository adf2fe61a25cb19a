"""`make demo`: the main job, `certfleet run`, against a local Pebble, and what it did.

Starts Pebble and pebble-challtestsrv on loopback (tools/pebble_lab.py), writes a domains
file in the seed's format (two certificates sharing two "web server" directories, local
here so that no SSH server and no root are needed) and a certfleet.toml, runs `certfleet
run` (issue, then deploy), shows the files each target got and `certfleet status`, runs
again to show "nothing to do" (exit 2), and stops exactly what it started.

    .venv/bin/python tools/demo.py [--workdir DIR]      (default: demo-state/)
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from pebble_lab import PebbleLab

REPO = Path(__file__).resolve().parent.parent
CERTFLEET = [sys.executable, "-m", "certfleet"]


def run(config: Path, *args: str, expect: int) -> None:
    print(f"\n$ certfleet {' '.join(args)}", flush=True)
    rc = subprocess.call([*CERTFLEET, *args], env=dict(os.environ, CERTFLEET_CONFIG=str(config)))
    print(f"[exit {rc}]", flush=True)
    if rc != expect:
        raise SystemExit(f"demo: expected exit {expect}, got {rc}")


def show_files(root: Path, label: str) -> None:
    print(f"\n# {label}", flush=True)
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        rel = path.relative_to(root)
        if stat.S_ISLNK(info.st_mode):
            print(f"  {rel} -> {os.readlink(path)}")
        elif stat.S_ISREG(info.st_mode):
            print(f"  {rel}  ({stat.filemode(info.st_mode)}, {info.st_size} bytes)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=REPO / "demo-state",
                        help="where the demo keeps everything (emptied first)")
    work = parser.parse_args().workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700, parents=True)
    web1, web2 = work / "web1" / "Certs", work / "web2" / "Certs"
    for folder in (web1, web2):
        folder.mkdir(parents=True)
    with PebbleLab(work / "pebble") as lab:
        print(f"Pebble: {lab.directory_url} (validates http-01 on port {lab.http_port})")
        domains = work / "domains.txt"
        domains.write_text("# ACME domain configuration file.\n"
                           "# format: domain|server:dir server:dir ...\n"
                           f"www.example.com example.com|{web1} {web2}\n"
                           f"www.example.net|{web1} {web2}\n")
        config = work / "certfleet.toml"
        config.write_text(f'state_dir = "{work / "state"}"\ndomains = "{domains}"\n\n'
                          f'[ca]\ndirectory = "{lab.directory_url}"\n'
                          f'ca_bundle = "{lab.ca_bundle}"\ncontact = ["hostmaster@example.com"]\n'
                          f'\n[challenge]\nhttp_listen = "127.0.0.1:{lab.http_port}"\n')
        for path in (domains, config):
            path.chmod(0o600)
        print(f"\n# {domains}\n{domains.read_text()}# {config}\n{config.read_text()}")
        run(config, "run", "--dry-run", expect=0)
        run(config, "run", expect=0)
        show_files(work / "web1", "what web1 got (web2 got the same)")
        run(config, "status", expect=0)
        run(config, "run", expect=2)
    print(f"\ndemo: done; Pebble stopped. Everything is in {work}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
