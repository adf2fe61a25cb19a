"""The nginx snippets: values that would change what the nginx text means are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from certfleet import nginx_config
from certfleet.errors import ConfigError
from tests.cli import run_main

THUMBPRINT = "A" * 43


@pytest.mark.parametrize("work", ["192.0.2.101:80", "[2001:db8::1]:8080", "work.example:81",
                                  "localhost:1", "h:65535"])
def test_good_work_addresses_are_pasted(work: str) -> None:
    assert f"proxy_pass http://{work};" in nginx_config.lb_proxy(work)


@pytest.mark.parametrize("work", [
    "192.0.2.1:80;", "x y:80", "a{b}:1", "h:80\n}", "h:80\"", "h:80'", "$host:80", "h:80#",
    "", "[::1]:80; return 200 x", "h:999999",
    # what `certfleet serve --listen` would refuse: no port, port 0, past 65535
    "localhost", "work.example", "127.0.0.1:0", "h:00", "h:65536",
])
def test_work_addresses_that_change_the_meaning_are_refused(work: str) -> None:
    with pytest.raises(ConfigError, match="is not HOST:PORT"):
        nginx_config.lb_proxy(work)


@pytest.mark.parametrize("webroot", ["/var/www/acme;", "/var/www/a b", "/var/www/{x}",
                                     "/var/www/\"x", "/var/www/$x", "/var/www/x\n}", "relative",
                                     "/var/www/#x", "/var/../etc"])
def test_webroots_that_change_the_meaning_are_refused(webroot: str) -> None:
    with pytest.raises(ConfigError, match="cannot go into nginx text"):
        nginx_config.work_webroot("127.0.0.1:80", ["www.example.com"], Path(webroot))


def test_a_bad_thumbprint_is_refused() -> None:
    assert f'"$1.{THUMBPRINT}"' in nginx_config.lb_stateless(THUMBPRINT)
    with pytest.raises(ConfigError):
        nginx_config.lb_stateless('x"; return 500 "')


def test_the_command_refuses_with_one_line(tmp_path: Path) -> None:
    rc, out, err = run_main(["nginx-config", "--state-dir", str(tmp_path), "--work",
                             "127.0.0.1:80; include /etc/shadow"])
    assert (rc, out) == (1, "")
    assert err.startswith("certfleet: nginx-config: Work host ")
