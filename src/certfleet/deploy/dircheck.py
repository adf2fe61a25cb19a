"""Whether a target directory is safe to write into: its owner, its mode, links on the way.

Touches nothing: the transports look at each directory from ``/`` down to the target
(``lstat``, never following a link) and ask here. A user who can write a directory on the
way can swap what comes after it (a directory for a symlink to ``/etc``), and a user who
can write the target directory itself can plant links and FIFOs at the names certfleet
writes; so, unless the host's settings say otherwise:

* no directory on the way is a symlink (``trust_target_dir = true`` accepts one);
* each is owned by root, the login user or the host's ``owner``;
* none is writable by others (a sticky directory such as ``/tmp`` on the way is fine:
  others cannot rename or remove what they do not own), and the target directory not at
  all;
* none is writable by its group, unless that group is the host's ``group`` or
  ``allow_group_writable = true``.

The transports still never follow a link where they write, whatever is accepted here.
"""

from __future__ import annotations

import stat

from ..protocol.frozen import frozen

SETTING_HINT = "trust_target_dir = true accepts it"


@frozen
class Trust:
    """Who may own or write the directories on the way to a target."""

    uids: frozenset[int]      # root, the login user, the configured owner
    gid: int | None = None    # the configured group, whose members may write
    any_group: bool = False   # allow_group_writable


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
        return f"{path} is a symlink: target directories are not reached through links " \
               f"({SETTING_HINT})"
    if not stat.S_ISDIR(mode):
        return f"{path} is {kind(mode)}, not a directory"
    bits = stat.S_IMODE(mode)
    if seen.uid not in trust.uids:
        return f"{path} is owned by uid {seen.uid}, not by root, the login user or the " \
               f"host's owner, who could swap the files ({SETTING_HINT})"
    sticky = bool(bits & stat.S_ISVTX) and not last
    if bits & stat.S_IWOTH and not sticky:
        return f"{path} is writable by others (mode {bits:04o}) ({SETTING_HINT})"
    if bits & stat.S_IWGRP and not sticky and not trust.any_group and seen.gid != trust.gid:
        return f"{path} is writable by its group {seen.gid} (mode {bits:04o}), not the " \
               "host's group (allow_group_writable = true accepts it)"
    return None
