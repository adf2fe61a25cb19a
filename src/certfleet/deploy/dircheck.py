"""Whether a target directory is safe to write into: its owner, its mode, links on the way.

Touches nothing but the directories ``open_dir`` opens (read only). The transports look at
each directory from ``/`` down to the target (``lstat``, never following a link) and ask
here; locally, and for the http-01 webroot (``solvers/webroot.py``), ``open_dir`` walks
itself, opening each component relative to the last. A user who can write a directory on
the way can swap what comes after it (a directory for a symlink to ``/etc``), and a user
who can write the target directory itself can plant links and FIFOs at the names
certfleet writes; so, unless the host's settings say otherwise (the webroot has none):

* no directory on the way is a symlink (``trust_target_dir = true`` accepts one);
* each is owned by root, the login user or the host's ``owner``;
* none is writable by others (a sticky directory such as ``/tmp`` on the way is fine:
  others cannot rename or remove what they do not own), and the target directory not at
  all;
* none is writable by its group, unless that group is the host's ``group`` or
  ``allow_group_writable = true``.

Over SFTP more is needed (``swappable``): there is no ``openat``, each request resolves its
path anew, so whoever may change an entry of a directory on the way to where the files go
could swap it for a link between two requests and send root's files into a directory of
their choosing. So each directory on the way (the one holding the directory the files go
into included) must be owned by root or the login user, not writable by its group (unless
``allow_group_writable = true``), and an entry of a sticky directory that others (or a
group) may write must be owned by root or the login user too (its owner may rename it).
The host's ``owner`` and ``group`` may still own and write the directory the files go into:
what they plant in it meets the care each file gets. Locally every step goes through a
descriptor, so none of this is needed there.

The transports still never follow a link where they write, whatever is accepted here.
"""

from __future__ import annotations

import os
import stat

from ..protocol.frozen import frozen

SETTING_HINT = "trust_target_dir = true accepts it"
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_WALK = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@frozen
class Trust:
    """Who may own or write the directories on the way to a target, and how the refusals
    name them and what relaxes them (a deploy target's settings by default)."""

    uids: frozenset[int]      # root, the login user, the configured owner
    gid: int | None = None    # the configured group, whose members may write
    any_group: bool = False   # allow_group_writable
    owners: str = "root, the login user or the host's owner"
    reached: str = "target directories are"
    hint: str = f" ({SETTING_HINT})"
    group_hint: str = ", not the host's group (allow_group_writable = true accepts it)"
    any_owner: bool = False   # the http-01 webroot: see solvers/webroot.py
    # root and the login user: over SFTP, the only owners of a directory on the way (and of
    # an entry of a sticky one) that nobody else could change between two requests
    steady: frozenset[int] = frozenset()


class Refused(Exception):
    """``open_dir`` met a directory ``problem`` refuses, or one swapped while opened."""


class Missing(Exception):
    """``open_dir`` found no directory at ``path`` (the directory, or one on the way)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


@frozen
class Seen:
    """What ``lstat`` said about one path."""

    path: str
    mode: int                 # st_mode, type bits included
    uid: int
    gid: int


def prefixes(directory: str) -> list[str]:
    """``/a/b`` -> ``["/", "/a", "/a/b"]``: every directory on the way, the last one included."""
    parts = [part for part in directory.split("/") if part]
    return ["/"] + ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def kind(mode: int) -> str:
    """What a file type is called in messages."""
    for test, name in ((stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISREG, "a regular file")):
        if test(mode):
            return name
    return "a special file"


def problem(seen: Seen, trust: Trust, *, last: bool) -> str | None:
    """Why ``seen`` (a directory on the way, or with ``last`` the target directory itself)
    must not be written through; None if it may."""
    mode, path = seen.mode, seen.path
    if stat.S_ISLNK(mode):
        return f"{path} is a symlink: {trust.reached} not reached through links{trust.hint}"
    if not stat.S_ISDIR(mode):
        return f"{path} is {kind(mode)}, not a directory"
    bits = stat.S_IMODE(mode)
    if seen.uid not in trust.uids and not trust.any_owner:
        return f"{path} is owned by uid {seen.uid}, not by {trust.owners}, who could swap " \
               f"the files{trust.hint}"
    sticky = bool(bits & stat.S_ISVTX) and not last
    if bits & stat.S_IWOTH and not sticky:
        return f"{path} is writable by others (mode {bits:04o}){trust.hint}"
    if bits & stat.S_IWGRP and not sticky and not trust.any_group and seen.gid != trust.gid:
        return f"{path} is writable by its group {seen.gid} (mode {bits:04o}){trust.group_hint}"
    return None


def open_dir(directory: str, trust: Trust | None) -> int:
    """A read-only descriptor of the absolute ``directory``, opened from ``/`` one
    component at a time relative to the last, never following a link, each one first
    refused if ``problem`` says so (``trust`` None: opened as the path says, links
    followed). Raises ``Missing`` or ``Refused``; other ``OSError`` pass through."""
    try:
        if trust is None:
            return os.open(directory, _DIR)
        fd = os.open("/", _WALK)
    except (FileNotFoundError, NotADirectoryError):
        raise Missing(directory) from None
    try:
        for path in prefixes(directory):
            last = path == directory
            if path == "/":
                if (why := problem(_seen(path, os.fstat(fd)), trust, last=last)) is not None:
                    raise Refused(why)
                continue
            name = path.rpartition("/")[2]
            try:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                raise Missing(path) from None
            if (why := problem(_seen(path, info), trust, last=last)) is not None:
                raise Refused(why)
            # Opened without following a link, and must be the very directory just judged:
            # a swap in between (by whoever may write the parent) is refused, not followed.
            new = os.open(name, (_DIR | os.O_NOFOLLOW) if last else _WALK, dir_fd=fd)
            os.close(fd)
            fd = new
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
                raise Refused(f"{path} was swapped while opened")
        if directory == "/":
            os.close(fd)
            fd = os.open("/", _DIR)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _seen(path: str, info: os.stat_result) -> Seen:
    return Seen(path, info.st_mode, info.st_uid, info.st_gid)


def swappable(parent: Seen, child: str, child_uid: int | None, trust: Trust) -> str | None:
    """Over SFTP: why someone other than root or the login user could replace ``child``, an
    entry of ``parent`` on the way to where the files go (or that directory itself), with a
    link between two requests; None if nobody could. ``child_uid`` is the entry's owner,
    None while it is not yet known (or not yet made)."""
    bits = stat.S_IMODE(parent.mode)
    sticky = bool(bits & stat.S_ISVTX)
    name = child.rpartition("/")[2]
    if parent.uid not in trust.steady:
        # the host's owner is the usual case; anyone else was refused by ``problem`` first
        who = " (the host's owner)" if parent.uid in trust.uids else ""
        return f"{parent.path} is owned by uid {parent.uid}{who}, not by root or the login " \
               f"user, who could swap {name} in it for a link between two SFTP requests " \
               f"({SETTING_HINT})"
    if bits & stat.S_IWGRP and not sticky and not trust.any_group:
        # the host's group only: any other group was refused by ``problem`` first
        return f"{parent.path} is writable by its group {parent.gid} (mode {bits:04o}), " \
               f"whose members could swap {name} in it for a link between two SFTP " \
               "requests (allow_group_writable = true accepts it)"
    if sticky and bits & (stat.S_IWGRP | stat.S_IWOTH) and child_uid is not None \
            and child_uid not in trust.steady:
        return f"{child} is owned by uid {child_uid}, not by root or the login user, who " \
               f"could swap it for a link in {parent.path} (mode {bits:04o}) between two " \
               f"SFTP requests ({SETTING_HINT})"
    return None
