"""Helpers for the shared-store tests: Work hosts (a local dir each) on one PostgreSQL."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from labconfig import write_config

from tests.cli import run_shown
from tests.waits import PROCESS


def store_key(folder: Path) -> Path:
    """The key that seals private keys, shared by every Work host of a test."""
    path = folder / "store.key"
    if not path.exists():
        path.write_text(secrets.token_hex(32) + "\n")
        path.chmod(0o600)
    return path


def store_section(db: Any, key: Path, **more: Any) -> dict[str, Any]:
    return {"backend": "postgresql", "dsn": db.dsn, "ca_file": str(db.ca_file),
            "password_file": str(db.password_file), "key_file": str(key), **more}


class Host:
    """One Work host: its own directory (certfleet.toml, local state, targets' config)."""

    def __init__(self, root: Path, name: str, lab: Any, db: Any, domains: Path, *,
                 lease: float = 30, **top: Any) -> None:
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir.chmod(0o700)
        self.name = name
        self.config = write_config(
            self.dir / "certfleet.toml", lab, self.dir / "state", domains,
            sections={"challenge": {"mode": "serve"},
                      "store": store_section(db, store_key(root), lease_seconds=lease,
                                             holder=name)}, **top)

    def cli(self, *argv: str) -> tuple[int, str]:
        rc, out = run_shown([*argv, "--config", str(self.config)])
        print(f"[{self.name}] $ certfleet {' '.join(argv)}\n{out}[exit {rc}]")
        return rc, out

    def command(self, *argv: str) -> list[str]:
        return [sys.executable, "-m", "certfleet", *argv, "--config", str(self.config)]

    def start(self, *argv: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.command(*argv), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=_env())


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        [f"{root}/src", root, os.environ.get("PYTHONPATH", "")])}


class Serve:
    """``certfleet serve`` of one host on Pebble's http-01 port, from the shared tokens."""

    def __init__(self, host: Host, port: int) -> None:
        self.log = host.dir / "serve.log"
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                host.command("serve", "-v", "--listen", f"127.0.0.1:{port}"),
                stdout=log, stderr=subprocess.STDOUT, text=True, env=_env())
        self.port = port
        deadline = time.monotonic() + PROCESS
        import socket

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("serve did not start listening")

    def stop(self) -> str:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        return self.log.read_text()

    def __enter__(self) -> Serve:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.stop()
