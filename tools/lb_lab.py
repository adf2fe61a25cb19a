"""A load balancer of the seed's topology: a real nginx on its own loopback address.

Its server block holds whatever snippet the test gives it (the ones `certfleet
nginx-config` prints) plus ``location / { return 404; }``; ``reconfigure`` swaps the
snippet and reloads nginx, as an operator would. Uses the process helpers of web_lab.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

from web_lab import NGINX, WebLabStartError, _Processes, _quote, _tail, find_binaries


class LoadBalancer:
    """nginx listening on ``address:port`` (plain http, like the seed's LB on port 80)."""

    def __init__(self, workdir: Path, address: str, port: int, *, name: str) -> None:
        self.workdir = Path(workdir).resolve()
        self.address, self.port, self.name = address, port, name
        self.prefix = self.workdir / "nginx"
        self.conf = self.prefix / "nginx.conf"
        self.log = self.workdir / "nginx.log"
        self._procs: _Processes | None = None
        self.http_snippet = ""   # for the http block (an upstream of several Work hosts)

    @property
    def label(self) -> str:
        return f"{self.address}:{self.port}"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _write(self, snippet: str) -> None:
        temp = self.prefix / "temp"
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (temp / sub).mkdir(parents=True, exist_ok=True)
        body = "\n".join("        " + line for line in snippet.splitlines())
        self.conf.write_text(f"""\
daemon off;
master_process on;
worker_processes 1;
user root root;
pid {_quote(self.prefix / "nginx.pid")};
error_log {_quote(self.log)} notice;
events {{ worker_connections 64; }}
http {{
    access_log {_quote(self.workdir / "access.log")};
    client_body_temp_path {_quote(temp / "body")};
    proxy_temp_path {_quote(temp / "proxy")};
    fastcgi_temp_path {_quote(temp / "fastcgi")};
    uwsgi_temp_path {_quote(temp / "uwsgi")};
    scgi_temp_path {_quote(temp / "scgi")};
{self.http_snippet}
    server {{
        listen {self.address}:{self.port};
        server_name _;
{body}
        location / {{
            return 404 "{self.name}: not the challenge path\\n";
        }}
    }}
}}
""")

    def _argv(self) -> list[str]:
        return [str(NGINX), "-p", str(self.prefix) + "/", "-c", str(self.conf), "-e",
                str(self.log)]

    def start(self, snippet: str, http_snippet: str = "") -> Self:
        find_binaries()
        self.http_snippet = http_snippet
        self.prefix.mkdir(parents=True, exist_ok=True)
        self._write(snippet)
        self._procs = _Processes()
        self._procs.spawn("nginx", self._argv(), self.log, self.workdir)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.address, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise WebLabStartError(f"{self.name}: nginx did not listen on {self.label}\n"
                               + _tail(self.log))

    def reconfigure(self, snippet: str) -> None:
        """Swap the snippet and reload; wait until the new workers answer."""
        self._write(snippet)
        subprocess.run([*self._argv(), "-s", "reload"], check=True, capture_output=True)
        time.sleep(0.5)  # the old worker finishes its connections and exits

    def get(self, path: str, host: str) -> tuple[int, str]:
        """GET ``path`` with a Host header, as the CA's validation request would."""
        request = urllib.request.Request(f"http://{self.label}{path}", headers={"Host": host})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def stop(self) -> None:
        if self._procs is not None:
            self._procs.stop()
            self._procs = None
