"""`make demo`: the main job, `certfleet run`, against a local Pebble, and what it did.

Starts Pebble and pebble-challtestsrv on loopback (tools/pebble_lab.py), writes a domains
file in the seed's format (two certificates sharing two "web server" directories, local
here so that no SSH server and no root are needed) and a certfleet.toml, runs `certfleet
run` (issue, then deploy), shows the files each target got and `certfleet status`, runs
again to show "nothing to do" (exit 2), and stops exactly what it started.

    .venv/bin/python tools/demo.py [--workdir DIR]      (default: demo-state/)
                                   [--certfleet COMMAND [--clean-env]]

``--certfleet`` says how to start certfleet (default: this Python's ``-m certfleet``), e.g.
``--certfleet "/usr/bin/python3 dist/certfleet.pyz"`` for the zipapp (``make zipapp``).
``--clean-env`` starts it with nothing of this environment, as ``env -i`` would: only
``PATH=/usr/bin:/bin``, ``HOME`` (a directory in the workdir) and ``CERTFLEET_CONFIG``, so
no virtualenv, ``PYTHONPATH`` or ``VIRTUAL_ENV`` can help it (``make demo-zipapp``).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from pebble_lab import PebbleLab

REPO = Path(__file__).resolve().parent.parent
CLEAN_PATH = "/usr/bin:/bin"


class Certfleet:
    """How certfleet is started: a command, in this environment or in a clean one."""

    def __init__(self, command: list[str], clean_home: Path | None = None) -> None:
        self.command = command
        self.clean_home = clean_home  # set: an environment of nothing but PATH, HOME, config

    def env(self, config: Path) -> dict[str, str]:
        if self.clean_home is None:
            return dict(os.environ, CERTFLEET_CONFIG=str(config))
        return {"PATH": CLEAN_PATH, "HOME": str(self.clean_home),
                "CERTFLEET_CONFIG": str(config)}

    def run(self, config: Path, *args: str, expect: int) -> None:
        print(f"\n$ certfleet {' '.join(args)}", flush=True)
        rc = subprocess.call([*self.command, *args], env=self.env(config))
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
    parser.add_argument("--certfleet", type=shlex.split, metavar="COMMAND",
                        default=[sys.executable, "-m", "certfleet"],
                        help="how to start certfleet, e.g. \"/usr/bin/python3 "
                             "dist/certfleet.pyz\" (default: this Python's -m certfleet)")
    parser.add_argument("--clean-env", action="store_true",
                        help=f"start certfleet with only PATH={CLEAN_PATH}, HOME (in the "
                             "workdir) and CERTFLEET_CONFIG in its environment, as env -i")
    args = parser.parse_args()
    work = args.workdir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(mode=0o700, parents=True)
    home = work / "home" if args.clean_env else None
    if home is not None:
        home.mkdir(mode=0o700)
    certfleet = Certfleet(args.certfleet, home)
    if args.certfleet != parser.get_default("certfleet") or home is not None:
        print(f"certfleet: {shlex.join(args.certfleet)}"
              + (f" (environment: PATH={CLEAN_PATH} HOME={home} and the config only)"
                 if home is not None else ""))
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
        certfleet.run(config, "run", "--dry-run", expect=0)
        certfleet.run(config, "run", expect=0)
        show_files(work / "web1", "what web1 got (web2 got the same)")
        certfleet.run(config, "status", expect=0)
        certfleet.run(config, "run", expect=2)
    print(f"\ndemo: done; Pebble stopped. Everything is in {work}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
