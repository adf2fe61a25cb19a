"""Local targets on the real disk: modes, owner, atomic replacement, failures."""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
import stat
from pathlib import Path

import pytest

from certfleet.deploy import DeployFile
from certfleet.deploy.local import LocalTransport
from certfleet.errors import DeployError
from certfleet.layout import Placement
from certfleet.spec import HostSettings
from tests.children import as_nobody, in_child
from tests.conftest import need_root


def _files(tag: str) -> list[DeployFile]:
    return [DeployFile("site.crt", f"cert {tag}\n".encode(), 0o644),
            DeployFile("site.key", f"key {tag}\n".encode(), 0o600)]


def _install(directory: Path, files: list[DeployFile], owner: str | None = None,
             group: str | None = None, *, own: bool = False) -> None:
    where = Placement(str(directory), tuple((f.name, f.name) for f in files), own)
    settings = HostSettings(owner=owner, group=group)

    async def go() -> None:
        async with LocalTransport() as transport:
            await transport.install(where, files, settings)
    asyncio.run(go())


def test_install_sets_modes_and_replaces(tmp_path: Path) -> None:
    _install(tmp_path, _files("v1"))
    _install(tmp_path, _files("v2"))
    assert (tmp_path / "site.crt").read_text() == "cert v2\n"
    assert stat.S_IMODE(os.stat(tmp_path / "site.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "site.crt").st_mode) == 0o644
    assert sorted(os.listdir(tmp_path)) == ["site.crt", "site.key"]


def test_install_sets_owner_and_group(tmp_path: Path) -> None:
    need_root("chown to another user")
    _install(tmp_path, _files("v1"), owner="nobody", group="nogroup")
    info = os.stat(tmp_path / "site.key")
    assert info.st_uid == pwd.getpwnam("nobody").pw_uid
    assert info.st_gid == grp.getgrnam("nogroup").gr_gid


def test_missing_directory_and_unknown_owner(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="target directory missing"):
        _install(tmp_path / "nope", _files("v1"))
    _install(tmp_path, _files("v1"))
    with pytest.raises(DeployError, match="no such user: 'no-such-user-here'"):
        _install(tmp_path, _files("v2"), owner="no-such-user-here")
    with pytest.raises(DeployError, match="invalid owner or group"):
        _install(tmp_path, _files("v2"), owner="-oops")
    assert (tmp_path / "site.crt").read_text() == "cert v1\n"
    assert sorted(os.listdir(tmp_path)) == ["site.crt", "site.key"]


def test_permission_denied_keeps_old_files(tmp_path: Path) -> None:
    """A deploy user without write access. Root ignores modes, so when the suite runs as
    root the install runs in a forked child that has become 'nobody'."""
    target = tmp_path / "t"
    target.mkdir()
    _install(target, _files("v1"))
    tmp_path.chmod(0o755)
    target.chmod(0o755 if os.geteuid() == 0 else 0o555)
    # Root ignores modes: only another user shows what they refuse.
    message = (as_nobody if os.geteuid() == 0 else in_child)(
        lambda: _install(target, [DeployFile("site.crt", b"v2", 0o644)]))
    target.chmod(0o755)
    assert message.startswith("DeployError: "), message
    assert "Permission denied" in message
    assert (target / "site.crt").read_text() == "cert v1\n"
    assert sorted(os.listdir(target)) == ["site.crt", "site.key"]


def test_reload_failure_and_success(tmp_path: Path) -> None:
    async def go(argv: list[str]) -> None:
        async with LocalTransport() as transport:
            await transport.run(argv)

    asyncio.run(go(["/bin/true"]))
    with pytest.raises(DeployError, match="exited 3: boom"):
        asyncio.run(go(["/bin/sh", "-c", "echo boom; exit 3"]))
    with pytest.raises(DeployError) as silent:
        asyncio.run(go(["/bin/false"]))
    assert str(silent.value) == "reload /bin/false exited 1 (and said nothing)"
    with pytest.raises(DeployError, match="No such file"):
        asyncio.run(go([str(tmp_path / "missing-binary")]))


def test_a_certificates_own_directory_is_made_inside_the_target(tmp_path: Path) -> None:
    own = tmp_path / "www.example.com"
    _install(own, _files("v1"), own=True)
    assert stat.S_IMODE(os.stat(own).st_mode) == 0o755
    assert (own / "site.crt").read_text() == "cert v1\n"
    with pytest.raises(DeployError, match="target directory missing"):
        _install(tmp_path / "gone" / "www.example.com", _files("v1"), own=True)
    assert not (tmp_path / "gone").exists()
