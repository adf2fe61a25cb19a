"""A tiny in-process ACME server for what Pebble cannot be made to send: hostile answers.

It speaks just enough RFC 8555 for certfleet to reach the step under test; a test
replaces one resource's answer with ``overrides[path] = handler``. Plain http on loopback,
so certfleet must be run with ``--insecure-http``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.Response]]


class FakeCA:
    def __init__(self, token: str = "A" * 43) -> None:
        self.token = token
        self.overrides: dict[str, Handler] = {}
        self.requests: list[str] = []
        self.send_nonces = True
        self._nonces = itertools.count(1)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def directory_url(self) -> str:
        return f"{self.base}/dir"

    def json(self, obj: Any, status: int = 200, **headers: str) -> web.Response:
        body = json.dumps(obj)
        ctype = "application/problem+json" if status >= 400 else "application/json"
        if self.send_nonces:
            headers = {"Replay-Nonce": f"nonce{next(self._nonces)}", **headers}
        return web.Response(status=status, text=body, content_type=ctype, headers=headers)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path}")
        await request.read()
        override = self.overrides.get(request.path)
        if override is not None:
            return await override(request)
        b = self.base
        routes: dict[str, Callable[[], web.Response]] = {
            "/dir": lambda: self.json({
                "newNonce": f"{b}/nonce", "newAccount": f"{b}/account",
                "newOrder": f"{b}/order", "revokeCert": f"{b}/revoke",
                "keyChange": f"{b}/key-change"}),
            "/nonce": lambda: web.Response(
                headers={"Replay-Nonce": f"n{next(self._nonces)}"} if self.send_nonces else {}),
            "/account": lambda: self.json({"status": "valid"}, 201, Location=f"{b}/acct/1"),
            "/order": lambda: self.json({
                "status": "pending", "identifiers": [{"type": "dns", "value": "x.example"}],
                "authorizations": [f"{b}/authz/1"], "finalize": f"{b}/finalize/1"},
                201, Location=f"{b}/order/1"),
            "/authz/1": lambda: self.json({
                "status": "pending", "identifier": {"type": "dns", "value": "x.example"},
                "challenges": [{"type": "http-01", "url": f"{b}/chall/1", "status": "pending",
                                "token": self.token}]}),
        }
        route = routes.get(request.path)
        if route is None:
            return self.json({"type": "urn:ietf:params:acme:error:malformed",
                              "detail": "not here"}, 404)
        return route()

    def start(self) -> FakeCA:
        threading.Thread(target=self._serve, daemon=True).start()
        if not self._started.wait(10):
            raise RuntimeError("fake CA did not start")
        return self

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._started.set()
        self._loop.run_forever()

    def stop(self) -> None:
        if self._loop is None:
            return
        loop, runner = self._loop, self._runner

        async def shutdown() -> None:
            if runner is not None:
                await runner.cleanup()
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
