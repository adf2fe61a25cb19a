"""``certfleet import``: bring another ACME client's account and certificates into certfleet.

One module per source, each reading it into a ``found.Migration`` (values only):

    from_acme_client.py  OpenBSD acme-client as the seed runs it: the account key (``-f``),
                         ``SSL/<domain>/{cert,chain,fullchain,privkey}.pem``, domains.txt
    from_certbot.py      certbot's configuration directory: ``renewal/*.conf`` (read by
                         ``renewal_conf.py``), ``live/``, ``archive/``, ``accounts/``

and what they share:

    source.py   the only reader of the source tree
    found.py    what was found: verified certificates, account keys, refusals, notes
    render.py   the text of the new certfleet.toml and domains file
    carry.py    carrying a migration out (or, with ``--dry-run``, saying what it would do)

May touch: the source tree is only ever read (no write, no lock, no chmod, not even an
access time where the system allows); the state directory only through ``Store`` and
``AccountKey``, as certfleet itself writes it; the new certfleet.toml and domains file,
created and never written over. The network only to look each account up at its CA
(``onlyReturnExisting``): nothing is ever ordered or registered. Hooks found in the source
are shown as suggestions and never run.
"""
