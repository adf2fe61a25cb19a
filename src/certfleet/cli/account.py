"""``account register|show|update|rollover|deactivate``: the ACME account at the job's CA.

Parses and prints; ``registration`` and ``account_changes`` do the work, ``account_key``
alone touches the key.
"""

from __future__ import annotations

import argparse

from ..config.sources import job_from
from ..errors import ConfigError
from ..report import EXIT_CHANGED, EXIT_NOTHING
from ..spec import JobConfig
from .output import say


def account(args: argparse.Namespace) -> int:
    """``certfleet account register|show|update|rollover|deactivate``."""
    action = args.action
    allowed = {"register": {"contact", "key_type", "new_key"}, "show": set(),
               "update": {"contact"}, "rollover": {"key_type"}, "deactivate": {"yes"}}
    given = {name for name in ("contact", "key_type", "new_key", "yes")
             if getattr(args, name) not in (None, False)}
    if stray := sorted(given - allowed[action]):
        options = ", ".join("--" + name.replace("_", "-") for name in stray)
        raise ConfigError(f"account {action}: {options} does not apply here")
    if action == "update" and args.contact is None:
        raise ConfigError("account update: give the new addresses with --contact EMAIL "
                          "(repeatable)")
    if action == "register" and args.key_type and not args.new_key:
        raise ConfigError("account register: --key-type is for a new key; add --new-key")
    if action == "deactivate" and not args.yes:
        raise ConfigError("account deactivate: the CA will refuse this account for good "
                          "(RFC 8555 section 7.3.6) and certificates can then only be "
                          "renewed with a new account; pass --yes to proceed")
    job = job_from(vars(args), need_domains=False)
    if action == "show":
        return _account_show(job)
    import asyncio  # not for `show`, which only reads files

    return asyncio.run(_account_online(action, args, job))


def _account_show(job: JobConfig) -> int:
    """What is on disk about the account; reads only (no key is made, nothing written)."""
    from ..store import open_store

    store = open_store(job, create=False)
    path = store.account_key_path(job.directory)
    key = store.account_key(job.directory)
    say(f"CA:         {job.directory}")
    say(f"key:        {path}" + ("" if key else " (none yet: `certfleet account register` "
                                  "or the first run makes it)"))
    if key is None:
        return 0
    say(f"thumbprint: {key.thumbprint} ({key.key_type.value})")
    record = store.load_account(job.directory) or {}
    if record.get("thumbprint") != key.thumbprint or not record.get("url"):
        say("account:    not registered yet (`certfleet account register`, or the first "
            "run, registers)")
        return 0
    say(f"account:    {record['url']}")
    status = str(record.get("status") or "valid")
    if record.get("deactivated_at"):
        status += f" (since {record['deactivated_at']})"
    say(f"status:     {status}")
    say(f"contact:    {', '.join(record.get('contact') or []) or '-'}")
    if record.get("eab_kid"):
        say(f"eab kid:    {record['eab_kid']}")
    if record.get("rolled_over_at"):
        say(f"key since:  {record['rolled_over_at']} (rolled over from "
            f"{record.get('previous_thumbprint') or 'an earlier key'})")
    clock = store.read_clock()
    if clock.get("directory") == job.directory and "skew_seconds" in clock:
        say(f"clock:      {clock['skew_seconds']} s from the CA's, compared "
            f"{str(clock.get('checked_at'))[:19]}")
    return 0


async def _account_online(action: str, args: argparse.Namespace, job: JobConfig) -> int:
    from .. import account_changes as changes
    from .. import ca
    from ..keytypes import KeyType
    from ..registration import eab_settings
    from ..store import open_store

    store = open_store(job)
    key_type = KeyType.parse(args.key_type) if args.key_type else job.account_key_type
    async with ca.client(job) as client:
        if action == "register":
            contact = args.contact if args.contact is not None else list(job.contact)
            done = await changes.register(
                client, store, key_type, contact, eab=eab_settings(job),
                new_key=args.new_key)
            if done.retired_key is not None:
                say(f"account: old key moved aside to {done.retired_key}")
            if not done.created:
                say(f"account: already registered: {done.session.kid} (change the "
                      "contact with `certfleet account update --contact EMAIL`)")
                return EXIT_NOTHING
            say(f"account: registered {done.session.kid}"
                  + (f" (contact {', '.join(contact)})" if contact else ""))
            return EXIT_CHANGED
        session = await changes.open_existing(client, store)
        if action == "update":
            account = await changes.update_contact(session, args.contact, store)
            shown = ", ".join(c.removeprefix("mailto:") for c in account.contact) or "none"
            say(f"account: {session.kid}: contact now {shown}")
        elif action == "rollover":
            rolled = await changes.rollover(session, store, key_type)
            say(f"account: {session.kid}: new {key_type.value} key, thumbprint "
                  f"{rolled.session.key.thumbprint}; the old key is kept in "
                  f"{rolled.old_key_kept}")
        else:
            await changes.deactivate(session, store)
            say(f"account: {session.kid}: deactivated; register a new account with "
                  "`certfleet account register --new-key`")
    return EXIT_CHANGED
