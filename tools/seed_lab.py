"""The seed's topology as a lab, on loopback addresses of this machine.

    CA (Pebble + challtestsrv DNS)
      -> LB1 127.0.0.11, LB2 127.0.0.12   real nginx, running what `certfleet nginx-config` prints
      -> Work host 127.0.0.1              `certfleet serve` (proxy mode) or nothing (stateless)
    Work host -> Web1a 127.0.0.2, Web1b 127.0.0.3   real sshd + nginx serving TLS from the deploy

Run the whole story (needs root for sshd and nginx as used here; see README):

    .venv/bin/python tools/seed_lab.py

It issues three certificates through the load balancers, deploys them to both web
servers, checks the challenge path, breaks LB2 and shows `check` and the run's preflight
naming it without asking the CA, then switches to stateless mode with the Work host's
responder stopped and issues again. The integration test tests/integration/test_lb_lab.py
builds the same topology with `build()`.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lb_lab
import web_lab
from labconfig import write_config
from pebble_lab import PebbleLab

SITES = {"www.example.com": ["LB1"], "www.example.net": ["LB2"],
         "shop.example.org": ["LB1", "LB2"]}
LB_ADDRESS = {"LB1": "127.0.0.11", "LB2": "127.0.0.12"}
CERTFLEET = [sys.executable, "-m", "certfleet"]


@dataclass
class Seed:
    lab: PebbleLab
    lbs: dict[str, lb_lab.LoadBalancer]
    web: dict[str, web_lab.WebHost]
    config: Path
    state: Path
    serve_port: int
    serve: subprocess.Popen[str] | None = field(default=None)

    def certfleet(self, *args: str) -> tuple[int, str]:
        proc = subprocess.run([*CERTFLEET, *args, "--config", str(self.config)],
                              capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout + proc.stderr

    def lb_snippet(self, *extra: str) -> str:
        rc, out = self.certfleet("nginx-config", *extra)
        if rc != 0:
            raise RuntimeError(out)
        return out.split("# On the Work host")[0]

    def start_serve(self) -> None:
        self.serve = subprocess.Popen([*CERTFLEET, "serve", "--config", str(self.config)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Only ends a hang (as tests/waits.py's PROCESS): on a loaded machine a healthy
        # serve has taken over 15 s to listen.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.serve.poll() is not None:
                raise RuntimeError(f"certfleet serve exited: {self.serve.communicate()[1]}")
            try:
                socket.create_connection(("127.0.0.1", self.serve_port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("certfleet serve did not start listening in 60 s")

    def stop_serve(self) -> str:
        """SIGTERM the responder; returns its log (one line per validation request)."""
        if self.serve is None:
            return ""
        self.serve.send_signal(signal.SIGTERM)
        _, err = self.serve.communicate(timeout=10)
        code, self.serve = self.serve.returncode, None
        if code != 0:
            raise RuntimeError(f"certfleet serve exited {code}: {err}")
        return err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def build(workdir: Path, lab: PebbleLab) -> Iterator[Seed]:
    """Start LB1, LB2, Web1a, Web1b and `certfleet serve` around a running Pebble."""
    for site, names in SITES.items():
        lab.add_a(site, [LB_ADDRESS[lb] for lb in names])
    web = {alias: web_lab.WebHost(workdir / alias, address, name=alias, sites=list(SITES))
           for alias, address in (("web1a", "127.0.0.2"), ("web1b", "127.0.0.3"))}
    lbs = {name: lb_lab.LoadBalancer(workdir / name, address, lab.http_port, name=name)
           for name, address in LB_ADDRESS.items()}
    seed: Seed | None = None
    try:
        identity, public = web_lab.client_key(workdir)
        for host in web.values():
            host.start()
            host.authorize(public)
        known_hosts, ssh_config = workdir / "known_hosts", workdir / "ssh_config"
        web_lab.write_known_hosts(known_hosts, web.values())
        web_lab.write_ssh_config(ssh_config, web, identity, known_hosts)
        domains = workdir / "domains.txt"
        domains.write_text("# the seed's format: domain|server:dir server:dir\n" + "".join(
            f"{site}|" + " ".join(f"{a}:{h.site_dir(site)}" for a, h in web.items()) + "\n"
            for site in SITES))
        serve_port = _free_port()
        sections: dict[str, dict[str, Any]] = {
            "challenge": {"mode": "serve", "serve_listen": f"127.0.0.1:{serve_port}"},
            "lb": {"addresses": [f"{a}:{lab.http_port}" for a in LB_ADDRESS.values()]},
            "ssh": {"config": [str(ssh_config)], "known_hosts": str(known_hosts)},
        }
        for alias, host in web.items():
            sections[f'hosts."{alias}"'] = {
                "reload": host.reload_argv(),
                "probe": {"port": host.tls_port, "address": host.address}}
        config = write_config(workdir / "certfleet.toml", lab, workdir / "state", domains,
                              sections=sections)
        seed = Seed(lab, lbs, web, config, workdir / "state", serve_port)
        snippet = seed.lb_snippet()
        for lb in lbs.values():
            lb.start(snippet)
        seed.start_serve()
        yield seed
    finally:
        if seed is not None and seed.serve is not None:
            seed.serve.kill()
            seed.serve.wait()
        for thing in [*lbs.values(), *web.values()]:
            thing.stop()


def _say(seed: Seed, *args: str) -> int:
    print(f"\n$ certfleet {' '.join(args)}", flush=True)
    rc, out = seed.certfleet(*args)
    print(out.rstrip() + f"\n[exit {rc}]", flush=True)
    return rc


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, \
            PebbleLab(Path(tmp) / "pebble", env={"PEBBLE_AUTHZREUSE": "0"}) as lab, \
            build(Path(tmp), lab) as seed:
        print(f"Pebble {lab.directory_url}; LB1 {seed.lbs['LB1'].label}, "
              f"LB2 {seed.lbs['LB2'].label}; Work host serve on 127.0.0.1:{seed.serve_port}; "
              f"Web1a {seed.web['web1a'].address}, Web1b {seed.web['web1b'].address}")
        _say(seed, "nginx-config")
        _say(seed, "run")
        _say(seed, "check")
        print("\n# LB2 loses its challenge location")
        seed.lbs["LB2"].reconfigure("")
        _say(seed, "check")
        _say(seed, "run", "--force", "www.example.net")
        print("\n# stateless: the load balancers answer token.thumbprint, serve is stopped")
        seed.stop_serve()
        snippet = seed.lb_snippet("--stateless")
        for lb in seed.lbs.values():
            lb.reconfigure(snippet)
        seed.config.write_text(seed.config.read_text().replace('mode = "serve"',
                                                               'mode = "stateless"'))
        _say(seed, "run", "--force")
        _say(seed, "status")
    print(f"\nseed lab: done in {time.monotonic() - started:.1f}s; everything stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
