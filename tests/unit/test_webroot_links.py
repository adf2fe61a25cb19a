"""The http-01 webroot is reached as a local deploy target is (``deploy.dircheck.open_dir``):
never through a symlink, never through a directory others may write (a sticky one on the
way aside), and token files are created and removed relative to the directory's
descriptor. A directory another user owns (the seed's site in its owner's home) is walked
through like any other.

The attack (/tmp/rev-local/e5): another local user who owns the site makes the challenge
directory a symlink to a directory of root's, and certfleet (root) writes there. Real
directories and symlinks; another user is uid 65534 (``os.chown``, so root only).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from certfleet import fsutil
from certfleet.errors import ChallengeError
from certfleet.solvers import webroot as module
from certfleet.solvers.webroot import WebrootSolver
from tests.conftest import need_root

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTH = TOKEN + ".NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
OTHER = 65534


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A directory of root's only (as /etc/cron.d), holding a file named like the token."""
    folder = tmp_path / "victim"
    folder.mkdir(mode=0o700)
    (folder / TOKEN).write_text("root's own\n")
    return folder


def _present(webroot: Path) -> str:
    with pytest.raises(ChallengeError) as caught:
        asyncio.run(WebrootSolver(webroot).present("example.com", TOKEN, KEY_AUTH))
    return str(caught.value)


def _untouched(victim: Path) -> None:
    assert sorted(os.listdir(victim)) == [TOKEN]
    assert (victim / TOKEN).read_text() == "root's own\n"


def test_a_site_owner_linking_the_webroot_to_roots_directory(tmp_path: Path,
                                                             victim: Path) -> None:
    need_root("a directory owned by another user")
    site = tmp_path / "site"
    site.mkdir(mode=0o755)
    (site / "acme").symlink_to(victim)
    os.chown(site, OTHER, OTHER)
    os.chown(site / "acme", OTHER, OTHER, follow_symlinks=False)
    assert _present(site / "acme") == (
        f"{site}/acme: webroot refused: {site}/acme is a symlink: the webroot is not reached "
        "through links")
    _untouched(victim)


@pytest.mark.parametrize("where", ["last", "on the way"])
def test_a_symlink_anywhere_on_the_way_is_not_followed(tmp_path: Path, victim: Path,
                                                       where: str) -> None:
    """Even one of root's: the rule of local deploy targets (dircheck)."""
    link = tmp_path / "link"
    if where == "last":
        link.symlink_to(victim)
        webroot = link
    else:
        (victim / "acme").mkdir()
        link.symlink_to(victim)
        webroot = link / "acme"
    message = f"{webroot}: webroot refused: {link} is a symlink: the webroot is not reached " \
              "through links"
    assert _present(webroot) == message
    assert sorted(os.listdir(victim)) == sorted({TOKEN, *(["acme"] if where != "last" else [])})
    assert (victim / TOKEN).read_text() == "root's own\n"
    if where != "last":
        assert os.listdir(victim / "acme") == []


def test_cleanup_through_a_link_removes_nothing(tmp_path: Path, victim: Path) -> None:
    (tmp_path / "acme").symlink_to(victim)
    with pytest.raises(ChallengeError, match="is a symlink: the webroot is not reached"):
        asyncio.run(WebrootSolver(tmp_path / "acme").cleanup("example.com", TOKEN, KEY_AUTH))
    _untouched(victim)


def test_a_site_in_its_owner_s_home_is_a_webroot(tmp_path: Path) -> None:
    """The seed's layout: /home/seirios/htdocs/.well-known/acme-challenge, the site's own,
    group-writable for the web server's group."""
    need_root("a directory owned by another user")
    webroot = tmp_path / "home" / "seirios" / "htdocs" / ".well-known" / "acme-challenge"
    webroot.mkdir(parents=True)
    for folder in (webroot, *list(webroot.parents)[:4]):
        os.chown(folder, OTHER, OTHER)
        folder.chmod(0o775)
    solver = WebrootSolver(webroot)
    asyncio.run(solver.present("example.com", TOKEN, KEY_AUTH))
    assert (webroot / TOKEN).read_text() == KEY_AUTH
    asyncio.run(solver.cleanup("example.com", TOKEN, KEY_AUTH))
    assert os.listdir(webroot) == []


@pytest.mark.parametrize(("mode", "at", "refused"), [
    (0o777, "www", "writable by others (mode 0777)"),
    (0o777, "www/acme", "writable by others (mode 0777)"),
    (0o1777, "www/acme", "writable by others (mode 1777)"),   # the webroot itself: sticky or not
])
def test_a_directory_others_may_write_is_refused(tmp_path: Path, mode: int, at: str,
                                                 refused: str) -> None:
    webroot = tmp_path / "www" / "acme"
    webroot.mkdir(parents=True)
    os.chown(tmp_path / at, -1, 0)
    (tmp_path / at).chmod(mode)
    assert _present(webroot) == f"{webroot}: webroot refused: {tmp_path / at} is {refused}"
    assert os.listdir(webroot) == []
    # A sticky directory on the way is fine (as /tmp is): others cannot rename what is ours.
    (tmp_path / at).chmod(0o1777 if at == "www" else 0o755)
    asyncio.run(WebrootSolver(webroot).present("example.com", TOKEN, KEY_AUTH))
    assert (webroot / TOKEN).read_text() == KEY_AUTH


def test_the_token_is_written_into_the_directory_opened(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        victim: Path) -> None:
    """The webroot swapped for a link between the walk and the write: the file still goes
    into the directory that was checked and opened, never where the new link points."""
    webroot = tmp_path / "acme"
    webroot.mkdir()
    write_new = fsutil.write_new

    def swapped(*args: object, **kwargs: object) -> None:
        webroot.rename(tmp_path / "aside")
        webroot.symlink_to(victim)
        write_new(*args, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(module.fsutil, "write_new", swapped)
    (victim / TOKEN).unlink()
    asyncio.run(WebrootSolver(webroot).present("example.com", TOKEN, KEY_AUTH))
    assert os.listdir(victim) == []
    assert (tmp_path / "aside" / TOKEN).read_text() == KEY_AUTH
