"""``serve``, ``check`` and ``nginx-config``: the http-01 path behind the load balancers.

Parses and prints; the work is done by ``serve``, ``preflight`` and ``nginx_config``.
``check`` reads only: it makes no account key and writes no state.
"""

from __future__ import annotations

import argparse

from ..config.sources import job_from
from ..errors import ConfigError
from ..spec import JobConfig
from .output import say


def _thumbprint(job: JobConfig) -> str | None:
    """The account key's thumbprint, if there is an account key (nothing is made)."""
    from ..account_key import AccountKey
    from ..store import open_store

    if not job.state_dir.is_dir():
        return None
    key = AccountKey.load(open_store(job, create=False).account_key_path(job.directory))
    return key.thumbprint if key else None


def _made_thumbprint(job: JobConfig) -> tuple[str, str]:
    """The account key's thumbprint and a note on where the key is (made now if missing)."""
    from ..account_key import AccountKey
    from ..store import open_store

    path = open_store(job).account_key_path(job.directory)
    key, created = AccountKey.load_or_create(path, job.account_key_type)
    made = f"made just now ({job.account_key_type.value})" if created else "the account key"
    return key.thumbprint, f"# thumbprint of {path}, {made}"


def nginx(args: argparse.Namespace) -> int:
    from .. import nginx_config

    job = job_from(vars(args), need_domains=False)
    if args.stateless:
        thumbprint, note = _made_thumbprint(job)
        say(note)
        say(nginx_config.lb_stateless(thumbprint).rstrip("\n"))
        return 0
    how = job.challenges
    works = args.work or [w for w in (how.serve_listen or how.http_listen,) if w]
    work = works[0] if works else None
    if not work:
        raise ConfigError("nginx-config: where do the load balancers reach the Work host? "
                          "set [challenge] serve_listen, or pass --work HOST:PORT")
    say(nginx_config.lb_proxy(works))
    if how.http_mode == "webroot" and how.webroot:
        names = [n for spec in job.certs for n in spec.names]
        say(nginx_config.work_webroot(work, names, how.webroot).rstrip("\n"))
    else:
        say(nginx_config.work_serve(work, str(args.config or "")).rstrip("\n"))
    return 0


def serve(args: argparse.Namespace) -> int:
    import asyncio

    from .. import serve as serving

    job = job_from(vars(args), need_domains=False)
    listen = args.listen or job.challenges.serve_listen
    if not listen:
        raise ConfigError("serve: no address; pass --listen HOST:PORT or set "
                          "[challenge] serve_listen")
    if job.store.shared:  # tokens from the database: any Work host's run presents them
        from ..store import open_store

        store = open_store(job, create=False)
        try:
            asyncio.run(serving.serve(listen, job.state_dir, tokens=store.tokens))
        finally:
            store.close()
        return 0
    asyncio.run(serving.serve(listen, serving.challenge_dir(job.state_dir)))
    return 0


def check(args: argparse.Namespace) -> int:
    import asyncio
    import secrets

    from .. import fleet, preflight
    from ..protocol.b64 import b64url
    from ..solvers.choose import make_solver, unusable

    job = job_from(vars(args), need_domains=True)
    specs = [s for s in fleet.select(job, args.names) if s.challenge == "http-01"]
    if specs and (why := unusable(job, "http-01")) is not None:
        raise ConfigError(why)
    thumbprint = _thumbprint(job)
    if thumbprint is None:
        if job.challenges.http_mode == "stateless":
            raise ConfigError("check: stateless mode answers with the account key's "
                              "thumbprint, and there is no account key yet; run `certfleet "
                              "account register` first")
        thumbprint = b64url(secrets.token_bytes(32))  # any will do: the Work host answers

    async def go() -> list[preflight.ProbeResult]:
        names = [n for spec in specs for n in spec.names if not n.startswith("*.")]
        challenges = job.state_dir / "challenges"
        async with make_solver(job, "http-01", challenges) as solver:
            return await preflight.probe(names, solver, thumbprint, job.lb.endpoints(),
                                         job.lb.port)

    results = asyncio.run(go()) if specs else []
    for result in results:
        say(result.line())
    failed = sum(not r.ok for r in results)
    say(f"{len(results)} probes: {len(results) - failed} ok, {failed} failed")
    return 1 if failed else 0
