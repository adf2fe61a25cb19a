"""A tiny in-process ACME server for what Pebble cannot be made to send: hostile answers.

It speaks enough RFC 8555 for certfleet to issue a real certificate end to end (directory,
nonces, account, newOrder, authorizations, http-01 challenges, finalize, download), signed
by its own small PKI (``TinyCA``) for the key and names of the CSR it receives. Challenges
are not really validated: posting one makes its authorization valid (or not, with
``validate = False``). Plain http on loopback, so certfleet runs with ``--insecure-http``.

Every resource can be scripted:

* ``overrides[path] = handler`` replaces one resource's answer completely (an async
  ``handler(request) -> response``); ``await ca.default(request)`` is the normal answer;
  ``prefixes[path] = handler`` does the same for every path that starts with ``path``;
* ``ca.tweak(path, change)`` keeps the normal JSON but passes it through ``change(obj)``
  first (and can add headers, a status or another Content-Type);
* ``ca.issue_chain(csr) -> bytes`` makes the certificate chain served at ``/cert/1``
  (default: a good leaf for the CSR, then the intermediate); ``ca.cert_headers`` and
  ``ca.cert_content_type`` shape its download; ``ca.alternates`` lists alternate chains.

Fixed resource paths: ``/dir``, ``/nonce``, ``/account``, ``/order`` (newOrder),
``/order/1``, ``/authz/<i>``, ``/chall/<i>`` (``i`` from 1, one per identifier),
``/finalize/1``, ``/cert/1``, ``/cert/1/alt/<i>`` (any ``i``: ``alternates[i % n]``),
``/revoke``. A new order resets them.
``requests`` logs ``"METHOD path"``; ``payloads`` the decoded JWS payload of every POST.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from multidict import CIMultiDict

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PEM_CHAIN = "application/pem-certificate-chain"
ROOT_CN = "Fake Root X1"
INTERMEDIATE_CN = "Fake Intermediate E1"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


class TinyCA:
    """A root and an intermediate (EC P-256), and leaves signed by the intermediate."""

    def __init__(self, root_cn: str = ROOT_CN, intermediate_cn: str = INTERMEDIATE_CN) -> None:
        now = datetime.now(UTC)
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self._ca_cert(_name(root_cn), _name(root_cn), self.root_key.public_key(),
                                  self.root_key, now)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = self._ca_cert(_name(intermediate_cn), self.root.subject,
                                  self.key.public_key(), self.root_key, now)

    @staticmethod
    def _ca_cert(subject: x509.Name, issuer: x509.Name, public_key: Any, signer: Any,
                 now: datetime) -> x509.Certificate:
        return (x509.CertificateBuilder()
                .subject_name(subject).issuer_name(issuer).public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(days=1))
                .not_valid_after(now + timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                               critical=False)
                .sign(signer, hashes.SHA256()))

    def leaf(self, public_key: Any, names: list[str], *, signer: Any = None,
             days: int = 90) -> x509.Certificate:
        """A leaf for ``names`` with ``public_key``, signed by the intermediate (or
        ``signer``, to make a chain that does not verify)."""
        now = datetime.now(UTC)
        ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        builder = (x509.CertificateBuilder()
                   .subject_name(_name(names[0]) if names else x509.Name([]))
                   .issuer_name(self.cert.subject).public_key(public_key)
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(minutes=5))
                   .not_valid_after(now + timedelta(days=days))
                   .add_extension(
                       x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False))
        if names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        return builder.sign(signer or self.key, hashes.SHA256())

    def chain_for(self, csr: x509.CertificateSigningRequest) -> bytes:
        """The good answer to ``csr``: its key and names, then the intermediate."""
        return pem(self.leaf(csr.public_key(), csr_names(csr)), self.cert)


def csr_names(csr: x509.CertificateSigningRequest) -> list[str]:
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in san.get_values_for_type(x509.DNSName)]


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class FakeCA:
    def __init__(self, token: str = "A" * 43) -> None:
        self.token = token
        self.pki = TinyCA()
        self.overrides: dict[str, Handler] = {}
        self.prefixes: dict[str, Handler] = {}
        self.requests: list[str] = []
        self.payloads: list[tuple[str, Any]] = []
        self.send_nonces = True
        self.validate = True           # a posted challenge makes its authorization valid
        self.issue_chain: Callable[[x509.CertificateSigningRequest], bytes] = \
            self.pki.chain_for
        self.cert_content_type = PEM_CHAIN
        self.cert_headers: list[tuple[str, str]] = []  # more headers on the download
        self.alternates: list[bytes] = []  # alternate chains, linked from /cert/1
        self.csrs: list[x509.CertificateSigningRequest] = []
        self._nonces = itertools.count(1)
        self._reset([{"type": "dns", "value": "x.example"}])
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def directory_url(self) -> str:
        return f"{self.base}/dir"

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    # -- building answers --------------------------------------------------------------------

    def json(self, obj: Any, status: int = 200, **headers: str) -> web.Response:
        body = json.dumps(obj)
        ctype = "application/problem+json" if status >= 400 else "application/json"
        return self.raw(body.encode(), ctype, status, **headers)

    def raw(self, body: bytes, content_type: str, status: int = 200,
            extra: Sequence[tuple[str, str]] = (), **headers: str) -> web.Response:
        """An answer with a nonce (unless ``send_nonces`` is off); ``extra`` may repeat a
        header (``Link``) any number of times."""
        if self.send_nonces:
            headers = {"Replay-Nonce": f"nonce{next(self._nonces)}", **headers}
        multi = CIMultiDict({"Content-Type": content_type, **headers})
        for key, value in extra:
            multi.add(key, value)
        return web.Response(status=status, body=body, headers=multi)

    def problem(self, short: str, detail: str, status: int = 403, **extra: Any) -> web.Response:
        return self.json({"type": f"urn:ietf:params:acme:error:{short}", "detail": detail,
                          **extra}, status)

    def tweak(self, path: str, change: Callable[[Any], Any], *, status: int | None = None,
              content_type: str | None = None, **headers: str) -> None:
        """Answer ``path`` with its normal JSON passed through ``change``."""
        async def handler(request: web.Request) -> web.StreamResponse:
            normal = await self.default(request)
            assert isinstance(normal, web.Response)
            assert normal.body is not None
            obj = change(json.loads(bytes(normal.body)))  # type: ignore[arg-type]
            keep = {k: v for k, v in normal.headers.items()
                    if k in ("Location", "Link", "Retry-After")}
            body = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
            return self.raw(body, content_type or normal.content_type,
                            status or normal.status, **{**keep, **headers})

        self.overrides[path] = handler

    # -- state ---------------------------------------------------------------------------------

    def _reset(self, identifiers: list[dict[str, Any]]) -> None:
        self.identifiers = identifiers
        self.authz_status = dict.fromkeys(range(1, len(identifiers) + 1), "pending")
        self.order_status = "pending"
        self.chain: bytes | None = None

    def order_json(self) -> dict[str, Any]:
        b = self.base
        obj: dict[str, Any] = {
            "status": self.order_status, "identifiers": self.identifiers,
            "authorizations": [f"{b}/authz/{i}" for i in self.authz_status],
            "finalize": f"{b}/finalize/1"}
        if self.order_status == "valid":
            obj["certificate"] = f"{b}/cert/1"
        return obj

    def challenge_json(self, i: int) -> dict[str, Any]:
        status = {"valid": "valid", "invalid": "invalid"}.get(self.authz_status[i], "pending")
        return {"type": "http-01", "url": f"{self.base}/chall/{i}", "status": status,
                "token": self.token}

    def authz_json(self, i: int) -> dict[str, Any]:
        return {"status": self.authz_status[i], "identifier": self.identifiers[i - 1],
                "challenges": [self.challenge_json(i)]}

    # -- the server ------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path}")
        body = await request.read()
        if request.method == "POST":
            self.payloads.append((request.path, self._payload(body)))
        override = self.overrides.get(request.path)
        if override is None:
            override = next((h for p, h in self.prefixes.items()
                             if request.path.startswith(p)), None)
        if override is not None:
            return await override(request)
        return await self.default(request)

    @staticmethod
    def _payload(body: bytes) -> Any:
        try:
            text = json.loads(body)["payload"]
            return json.loads(_b64url_decode(text)) if text else None
        except (ValueError, KeyError, TypeError):
            return "<not a JWS>"

    async def default(self, request: web.Request) -> web.StreamResponse:
        """The normal answer of ``request``'s resource."""
        body = await request.read()
        path, b = request.path, self.base
        parts = path.strip("/").split("/")
        if path == "/dir":
            return self.json({
                "newNonce": f"{b}/nonce", "newAccount": f"{b}/account",
                "newOrder": f"{b}/order", "revokeCert": f"{b}/revoke",
                "keyChange": f"{b}/key-change"})
        if path == "/nonce":
            return web.Response(
                headers={"Replay-Nonce": f"n{next(self._nonces)}"} if self.send_nonces else {})
        if path == "/account":
            return self.json({"status": "valid"}, 200, Location=f"{b}/acct/1")
        if path == "/order":
            payload = self._payload(body)
            identifiers = payload.get("identifiers") if isinstance(payload, dict) else None
            self._reset(identifiers or [{"type": "dns", "value": "x.example"}])
            return self.json(self.order_json(), 201, Location=f"{b}/order/1")
        if path == "/order/1":
            return self.json(self.order_json())
        if len(parts) == 2 and parts[0] in ("authz", "chall") and parts[1].isdigit() \
                and int(parts[1]) in self.authz_status:
            i = int(parts[1])
            if parts[0] == "authz":
                return self.json(self.authz_json(i))
            if self.validate:
                self.authz_status[i] = "valid"
            return self.json({**self.challenge_json(i), "status": "processing"
                              if not self.validate else "valid"})
        if path == "/finalize/1":
            payload = self._payload(body)
            csr = x509.load_der_x509_csr(_b64url_decode(payload["csr"]))
            self.csrs.append(csr)
            self.chain = self.issue_chain(csr)
            self.order_status = "valid"
            return self.json(self.order_json())
        if path == "/cert/1" and self.chain is not None:
            links = [("Link", f'<{b}/cert/1/alt/{i}>;rel="alternate"')
                     for i in range(len(self.alternates))]
            return self.raw(self.chain, self.cert_content_type,
                            extra=[*links, *self.cert_headers])
        if len(parts) == 4 and path.startswith("/cert/1/alt/") and parts[3].isdigit() \
                and self.alternates:
            return self.raw(self.alternates[int(parts[3]) % len(self.alternates)], PEM_CHAIN)
        if path == "/revoke":
            return self.raw(b"", "text/plain")
        return self.problem("malformed", "not here", 404)

    def count(self, request: str) -> int:
        """How many requests were ``"METHOD path"`` (or started with it, ending in ``*``)."""
        if request.endswith("*"):
            return sum(r.startswith(request[:-1]) for r in self.requests)
        return self.requests.count(request)

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
