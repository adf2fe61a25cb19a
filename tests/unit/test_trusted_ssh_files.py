"""The files certfleet.toml names for another reader (``named_files``): the ssh_config files
(their ProxyCommand runs as certfleet's user), known_hosts and the identity, and the TLS
trust anchors (``ca_bundle``, ``smtp_ca_bundle``) pass certfleet.toml's own rule, when the
configuration is read (at the line naming them) and again just before asyncssh opens them.

Real files on disk; another user is uid 65534 (``os.chown``, so root only); the SSH server
is the in-process one of ``sshlab``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from asyncssh.config import SSHClientConfig

from certfleet import named_files
from certfleet.config import ConfigErrors, load_job
from certfleet.deploy import ssh
from certfleet.errors import DeployError
from certfleet.spec import HostSettings, Target
from tests.cli import run_main
from tests.conftest import need_root

from .sshlab import Remote, lab

OTHER = 65534
OWNED = "owned by uid 65534, not by this user or root; whoever owns it decides what " \
        "certfleet runs"


@pytest.fixture
def conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A configuration directory only its owner writes; HOME without an ssh config."""
    folder = tmp_path / "conf"
    folder.mkdir(mode=0o755)
    (folder / "domains.txt").write_text("www.example.com\n")
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("HOME", str(home))
    return folder


def _file(path: Path, text: str, mode: int, owner: int | None = None) -> Path:
    path.write_text(text)
    path.chmod(mode)
    if owner is not None:
        need_root("a file owned by another user")
        os.chown(path, owner, -1)
    return path


def _problems(conf: Path, toml: str) -> list[str]:
    (conf / "certfleet.toml").write_text(toml)
    with pytest.raises(ConfigErrors) as caught:
        load_job(conf / "certfleet.toml", domains_path=conf / "domains.txt")
    return [p.replace(f"{conf}/", "") for p in caught.value.problems]


def _loads(conf: Path, toml: str) -> None:
    (conf / "certfleet.toml").write_text(toml)
    load_job(conf / "certfleet.toml", domains_path=conf / "domains.txt")


def test_an_ssh_config_another_user_owns_is_refused_at_its_line(conf: Path) -> None:
    _file(conf / "ssh_config", "Host web1\n  ProxyCommand /bin/sh -c 'id > /tmp/x'\n", 0o644,
          owner=OTHER)
    assert _problems(conf, "[ssh]\nconfig = ['ssh_config']\n") == [
        f"certfleet.toml:2: ssh_config: {OWNED}"]


def test_ssh_config_and_known_hosts_may_be_read_by_others_but_not_written(conf: Path) -> None:
    _file(conf / "ssh_config", "Host web1\n  Port 2222\n", 0o644)
    _file(conf / "known_hosts", "", 0o644)
    _loads(conf, "[ssh]\nconfig = ['ssh_config']\nknown_hosts = 'known_hosts'\n")
    (conf / "ssh_config").chmod(0o664)
    (conf / "known_hosts").chmod(0o646)
    assert _problems(conf, "[ssh]\nconfig = 'ssh_config'\n\nknown_hosts = 'known_hosts'\n") == [
        "certfleet.toml:2: ssh_config: writable by group or others (mode 664); chmod go-w it",
        "certfleet.toml:4: known_hosts: writable by group or others (mode 646); chmod go-w it"]


def test_known_hosts_another_user_owns_is_refused(conf: Path) -> None:
    _file(conf / "known_hosts", "", 0o644, owner=OTHER)
    assert _problems(conf, "[ssh]\nknown_hosts = 'known_hosts'\n") == [
        f"certfleet.toml:2: known_hosts: {OWNED}"]


@pytest.mark.parametrize("table", ["hosts.default", 'hosts."web1"'])
def test_an_identity_others_can_read_is_refused(conf: Path, table: str) -> None:
    _file(conf / "id", "key\n", 0o400)
    _loads(conf, f"[{table}]\nidentity = 'id'\n")
    (conf / "id").chmod(0o640)
    assert _problems(conf, f"[{table}]\nuser = 'deploy'\nidentity = 'id'\n") == [
        "certfleet.toml:3: id: a secret readable by group or others (mode 640); chmod 600 it"]


def test_an_identity_another_user_owns_is_refused(conf: Path) -> None:
    _file(conf / "id", "key\n", 0o600, owner=OTHER)
    assert _problems(conf, "[hosts.default]\nidentity = 'id'\n") == [
        f"certfleet.toml:2: id: {OWNED}"]


def test_a_file_in_a_directory_others_can_write_is_refused(conf: Path) -> None:
    shared = conf / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    _file(shared / "known_hosts", "", 0o644)
    assert _problems(conf, "[ssh]\nknown_hosts = 'shared/known_hosts'\n") == [
        "certfleet.toml:2: shared/known_hosts: its directory shared is writable by group or "
        "others (mode 777), who could replace it"]


def test_an_include_is_refused_at_its_own_line(conf: Path) -> None:
    _file(conf / "other", "Host web1\n  ProxyCommand /bin/false\n", 0o644)
    _file(conf / "ssh_config", f"# mine\nHost web1\n  Port 22\n  Include {conf}/other\n",
          0o644)
    assert _problems(conf, "[ssh]\nconfig = ['ssh_config']\n") == [
        f"certfleet.toml:2: ssh_config:4: {named_files.INCLUDE_REFUSED}"]


@pytest.mark.parametrize("line", [
    "Include {}", "include={}", "  INCLUDE   {} /none", "\tInclude\t{}", '"Include" {}',
    "Inc'lude' {}", "=Include {}", "Include= {}", "\u2003Include {}", "User x\rInclude {}"])
def test_every_spelling_asyncssh_takes_as_include_is_refused(conf: Path, line: str) -> None:
    """Each line does make asyncssh read the other file (its Port is the one used), and is
    the one refused; lines that only look like it are not."""
    other = _file(conf / "other", "Port 2222\n", 0o644)
    text = f"# Include {other}\nHost Include\nIncludeX {other}\nHost *\n{line.format(other)}\n"
    config = _file(conf / "ssh_config", text, 0o644)
    loaded = SSHClientConfig.load(None, [config], False, False, False, "root", (), "web1", ())
    assert loaded.get("Port") == 2222
    assert _problems(conf, "[ssh]\nconfig = ['ssh_config']\n") == [
        f"certfleet.toml:2: ssh_config:5: {named_files.INCLUDE_REFUSED}"]


def test_the_default_ssh_config_is_checked_where_a_deploy_uses_it(
        conf: Path, tmp_path: Path) -> None:
    """``~/.ssh/config`` is the operator's own, often with an ``Include``: the configuration
    loads (``status`` and local deploys never read it), and an SSH deploy refuses it, one
    line naming it, before connecting."""
    home = Path(os.environ["HOME"])
    (home / ".ssh").mkdir(mode=0o700)
    config = _file(home / ".ssh" / "config", "Include ~/.ssh/config.d/*\nHost *\n", 0o666)
    job = load_job(conf / "certfleet.toml" if (conf / "certfleet.toml").exists() else None,
                   domains_path=conf / "domains.txt")
    assert job.ssh_config == (config,)

    async def body(remote: Remote) -> tuple[str, int]:
        transport = ssh.SshTransport(Target("/", host="127.0.0.1", user="deployer"),
                                     HostSettings(port=remote.port, identity=remote.identity),
                                     ssh_config=job.ssh_config, known_hosts=remote.known_hosts)
        with pytest.raises(DeployError) as caught:
            async with transport:
                pass
        return str(caught.value), len(remote.connections)
    said, connections = lab(tmp_path, body)
    assert said == f"deployer@127.0.0.1: {config}: writable by group or others (mode 666); " \
        "chmod go-w it"
    assert connections == 0


def test_a_ca_bundle_another_user_can_write_is_refused(conf: Path) -> None:
    bundle = _file(conf / "ca.pem", "", 0o644)
    _loads(conf, "[ca]\nca_bundle = 'ca.pem'\n")
    bundle.chmod(0o666)
    assert _problems(conf, "[ca]\nca_bundle = 'ca.pem'\n") == [
        "certfleet.toml:2: ca_bundle ca.pem: writable by group or others (mode 666); chmod "
        "go-w it"]
    with pytest.raises(ConfigErrors) as caught:
        load_job(None, domains_path=conf / "domains.txt", overrides={"ca_bundle": bundle})
    assert caught.value.problems == [
        f"command line: ca_bundle {bundle}: writable by group or others (mode 666); chmod "
        "go-w it"]


def test_a_ca_bundle_another_user_owns_is_refused(conf: Path) -> None:
    _file(conf / "ca.pem", "", 0o644, owner=OTHER)
    assert _problems(conf, "[ca]\nca_bundle = 'ca.pem'\n") == [
        f"certfleet.toml:2: ca_bundle ca.pem: {OWNED}"]


def test_an_smtp_ca_bundle_is_checked_and_must_exist(conf: Path) -> None:
    _file(conf / "smtp.pem", "", 0o644, owner=OTHER)
    toml = "[notify]\nsmtp_ca_bundle = '{}'\n"
    assert _problems(conf, toml.format("smtp.pem")) == [f"certfleet.toml:2: smtp.pem: {OWNED}"]
    assert _problems(conf, toml.format("none.pem")) == ["certfleet.toml:2: none.pem: no such file"]


def test_the_command_line_says_it_in_one_line_each(conf: Path) -> None:
    _file(conf / "ssh_config", "Host *\n  ProxyCommand /bin/true\n", 0o666)
    _file(conf / "id", "key\n", 0o644)
    (conf / "certfleet.toml").write_text(
        "domains = 'domains.txt'\n[ssh]\nconfig = ['ssh_config']\n[hosts.default]\n"
        "identity = 'id'\n")
    rc, out, err = run_main(["status", "--config", str(conf / "certfleet.toml")])
    assert rc != 0
    assert "Traceback" not in out + err
    assert err.splitlines() == [
        f"{conf}/certfleet.toml:3: {conf}/ssh_config: writable by group or others (mode 666); "
        "chmod go-w it",
        f"{conf}/certfleet.toml:5: {conf}/id: a secret readable by group or others (mode 644); "
        "chmod 600 it"]


# -- just before asyncssh opens them ------------------------------------------------------


def _refused(tmp_path: Path, spoil: str) -> tuple[str, int]:
    """(the deploy's error, connections the server saw) after ``spoil`` made one of the
    files the transport was given untrustworthy; first, unspoiled, it connects."""
    async def body(remote: Remote) -> tuple[str, int]:
        config = _file(tmp_path / "ssh_config", "Host lab\n  HostName 127.0.0.1\n"
                       f"  Port {remote.port}\n", 0o644)

        def transport() -> ssh.SshTransport:
            return ssh.SshTransport(Target("/", host="lab", user="deployer"),
                                    HostSettings(identity=remote.identity),
                                    ssh_config=[config], known_hosts=remote.known_hosts)
        async with transport():
            pass
        seen = len(remote.connections)
        files = {"config": config, "known_hosts": remote.known_hosts,
                 "identity": remote.identity}
        if spoil == "missing":
            remote.known_hosts.unlink()
        elif spoil == "identity":
            remote.identity.chmod(0o644)
        else:
            need_root("a file owned by another user")
            os.chown(files[spoil], OTHER, -1)
        with pytest.raises(DeployError) as caught:
            async with transport():
                pass
        return str(caught.value), len(remote.connections) - seen
    return lab(tmp_path, body)


@pytest.mark.parametrize("spoil", ["config", "known_hosts", "missing", "identity"])
def test_the_deploy_checks_the_files_again_before_connecting(tmp_path: Path,
                                                              spoil: str) -> None:
    said, connections = _refused(tmp_path, spoil)
    names = {"config": tmp_path / "ssh_config", "known_hosts": tmp_path / "known_hosts",
             "missing": tmp_path / "known_hosts", "identity": tmp_path / "id_ed25519"}
    reason = {"missing": "no such file",
              "identity": "a secret readable by group or others (mode 644); chmod 600 it"}
    assert said == f"deployer@lab: {names[spoil]}: {reason.get(spoil, OWNED)}"
    assert connections == 0


def test_a_proxy_command_of_another_users_ssh_config_never_runs(tmp_path: Path) -> None:
    """The attack itself: a 0644 ssh_config another user owns names a ProxyCommand."""
    ran = tmp_path / "ran"
    config = _file(tmp_path / "ssh_config",
                   f"Host web1\n  HostName 127.0.0.1\n  ProxyCommand /bin/sh -c 'id > {ran}'\n",
                   0o644, owner=OTHER)

    async def body(remote: Remote) -> str:
        transport = ssh.SshTransport(Target("/", host="web1", user="deployer"),
                                     HostSettings(identity=remote.identity),
                                     ssh_config=[config], known_hosts=remote.known_hosts)
        with pytest.raises(DeployError) as caught:
            async with transport:
                pass
        return str(caught.value)
    assert lab(tmp_path, body) == f"deployer@web1: {config}: {OWNED}"
    assert not ran.exists()


def test_an_ssh_config_nobody_named_is_never_read(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """No [ssh] config and no ~/.ssh/config when the configuration was read: one that
    appears later (here, writable by anyone) is not read by asyncssh behind our back."""
    ran = tmp_path / "ran"
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    monkeypatch.setenv("HOME", str(home))

    async def body(remote: Remote) -> None:
        _file(home / ".ssh" / "config",
              f"Host 127.0.0.1\n  ProxyCommand /bin/sh -c 'id > {ran}'\n", 0o666)
        async with remote.transport():
            pass
    lab(tmp_path, body)
    assert not ran.exists()
