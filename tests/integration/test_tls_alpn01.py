"""tls-alpn-01 (RFC 8737) validated by a real Pebble (-strict) against the built-in responder.

Pebble connects to 127.0.0.1:<lab.tls_port> for every name (pebble-challtestsrv resolves
unknown names to 127.0.0.1), so ``TlsAlpnSolver`` listens there.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from cryptography import x509
from pebble_lab import PebbleLab

from certfleet.acme_client import AcmeClient
from certfleet.errors import ChallengeError
from certfleet.keytypes import KeyType
from certfleet.registration import open_account
from certfleet.solvers.tls_alpn import TlsAlpnSolver
from certfleet.store import Store
from tests.issuing import issue_names as issue

from ..unit.test_tls_alpn import check_validation_cert, probe

pytestmark = pytest.mark.integration


class ProbingSolver(TlsAlpnSolver):
    """Once every name is presented, and before the CA is told, other clients try it."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.presented: dict[str, str] = {}
        self.probes: dict[tuple[str, str], bytes | str] = {}

    async def present(self, name: str, token: str, key_auth: str) -> None:
        await super().present(name, token, key_auth)
        self.presented[name] = key_auth

    async def ready(self) -> None:
        for name in self.presented:
            self.probes[name, "acme-tls/1"] = await probe(self.port, name, ["acme-tls/1"])
            self.probes[name, "http/1.1"] = await probe(self.port, name, ["http/1.1"])
            self.probes[name, "no ALPN"] = await probe(self.port, name, None)
            self.probes[name, "no ALPN, TLS 1.2"] = await probe(self.port, name, None, True)
        self.probes["unknown.example.com", "acme-tls/1"] = await probe(
            self.port, "unknown.example.com", ["acme-tls/1"])


def test_issue_two_names_by_tls_alpn01(pebble: PebbleLab, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    names = ["tls-alpn.example.com", "www.tls-alpn.example.com"]
    store = Store(tmp_path / "state")
    after_cleanup: list[bytes | str] = []

    async def go() -> ProbingSolver:
        async with AcmeClient(pebble.directory_url,
                              ca_bundle=pebble.ca_bundle) as client, \
                ProbingSolver("127.0.0.1", pebble.tls_port) as solver:
            session = await open_account(client, store, KeyType.EC256, [])
            stored = await issue(session, store, names, KeyType.EC256, solver)
            assert stored.name == names[0]
            for name in names:  # cleaned up, still listening
                after_cleanup.append(await probe(solver.port, name, ["acme-tls/1"]))
            return solver

    with caplog.at_level(logging.INFO, logger="certfleet.solvers.tls_alpn"):
        solver = asyncio.run(go())

    current = store.current(names[0])
    assert current is not None
    leaf = x509.load_pem_x509_certificate(current.file("cert.pem").read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == sorted(names)

    for name in names:
        der = solver.probes[name, "acme-tls/1"]
        assert isinstance(der, bytes), der
        check_validation_cert(der, name, solver.presented[name])
        for client in ("http/1.1", "no ALPN", "no ALPN, TLS 1.2"):
            result = solver.probes[name, client]
            assert isinstance(result, str), (name, client)  # no certificate, handshake failed
            assert "no application protocol" in result, (name, client, result)
    assert "UNRECOGNIZED_NAME" in str(solver.probes["unknown.example.com", "acme-tls/1"])
    assert all("UNRECOGNIZED_NAME" in str(r) for r in after_cleanup), after_cleanup

    # Pebble itself came and was answered, once per name at least.
    served = [r.getMessage() for r in caplog.records
              if r.getMessage().endswith("-> validation certificate sent")]
    for name in names:
        # one of ours, then the CA's (Pebble validates from several perspectives)
        assert sum(f"SNI {name}, agreed ALPN acme-tls/1" in m for m in served) >= 2, served


class WrongKeyAuthSolver(TlsAlpnSolver):
    async def present(self, name: str, token: str, key_auth: str) -> None:
        await super().present(name, token, key_auth + "x")

    async def cleanup(self, name: str, token: str, key_auth: str) -> None:
        await super().cleanup(name, token, key_auth + "x")


def test_pebble_rejects_a_wrong_digest(pebble: PebbleLab, tmp_path: Path) -> None:
    store = Store(tmp_path / "state")

    async def go() -> None:
        async with AcmeClient(pebble.directory_url,
                              ca_bundle=pebble.ca_bundle) as client, \
                WrongKeyAuthSolver("127.0.0.1", pebble.tls_port) as solver:
            session = await open_account(client, store, KeyType.EC256, [])
            await issue(session, store, ["wrong-digest.tls-alpn.example.com"], KeyType.EC256,
                        solver)

    with pytest.raises(ChallengeError, match=r"wrong-digest\.tls-alpn\.example\.com: "
                       r"validation failed: unauthorized"):
        asyncio.run(go())


def test_ip_address_by_tls_alpn01(pebble: PebbleLab, tmp_path: Path) -> None:
    """RFC 8738 §6: an IP identifier validated over tls-alpn-01 (SNI is the reverse name)."""
    store = Store(tmp_path / "state")

    async def go() -> None:
        from certfleet.solvers.tls_alpn import TlsAlpnSolver

        async with AcmeClient(pebble.directory_url, ca_bundle=pebble.ca_bundle) as client, \
                TlsAlpnSolver("127.0.0.1", pebble.tls_port) as solver:
            session = await open_account(client, store, KeyType.EC256, [])
            await issue(session, store, ["127.0.0.1"], KeyType.EC256, solver)

    asyncio.run(go())
    current = store.current("127.0.0.1")
    assert current is not None
    leaf = x509.load_pem_x509_certificate(current.file("cert.pem").read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
