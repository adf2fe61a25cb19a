"""A CA that issues a certificate with the right key and names, correctly signed, but one
no TLS client would accept: a leaf not valid now or for a second only, a leaf that is a CA,
an issuer that is no CA or has expired. As in test_hostile_ca.py: after a good version 1,
``issue --force`` must exit 1 with one line naming what is wrong, and version 1 stays."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .fakeca import FakeCA, TinyCA, csr_names, pem
from .harness import Harness

Csr = x509.CertificateSigningRequest


def _leaf(tiny: TinyCA, csr: Csr, start: timedelta, end: timedelta, *,
          ca: bool = False) -> x509.Certificate:
    """The CSR's key and names, signed by the intermediate, valid from now + ``start`` to
    now + ``end``."""
    now = datetime.now(UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(tiny.key.public_key())
    builder = (x509.CertificateBuilder().subject_name(x509.Name([]))
               .issuer_name(tiny.cert.subject).public_key(csr.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now + start).not_valid_after(now + end)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                   ski), critical=False)
               .add_extension(x509.SubjectAlternativeName(
                   [x509.DNSName(n) for n in csr_names(csr)]), critical=False))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                        critical=True)
    return builder.sign(tiny.key, hashes.SHA256())


def _intermediate(tiny: TinyCA, *, ca: bool = True, start: timedelta = timedelta(days=-1),
                  end: timedelta = timedelta(days=3650)) -> x509.Certificate:
    """The intermediate's name and key, certified again by the root: only the flags or
    the dates differ, so the chain's signatures all verify."""
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(tiny.cert.subject)
            .issuer_name(tiny.root.subject).public_key(tiny.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + start).not_valid_after(now + end)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(tiny.root_key, hashes.SHA256()))


DAY = timedelta(days=1)
GOOD = (-DAY, 90 * DAY)
CASES: dict[str, tuple[Callable[[TinyCA, Csr], bytes], str, *tuple[str, ...]]] = {
    "expired leaf": (lambda t, c: pem(_leaf(t, c, -100 * DAY, -10 * DAY), t.cert),
                     ": certificate expired at "),
    "leaf valid in ten years": (lambda t, c: pem(_leaf(t, c, 3650 * DAY, 3740 * DAY), t.cert),
                                ": certificate not valid until ",
                                " UTC: the CA's clock or the certificate is wrong"),
    "leaf valid for a second": (
        lambda t, c: pem(_leaf(t, c, -timedelta(seconds=1), timedelta(seconds=1)), t.cert),
        ": certificate valid for only 0:00:02 "),
    "leaf is a CA": (lambda t, c: pem(_leaf(t, c, *GOOD, ca=True), t.cert),
                     ": the certificate is itself a CA certificate (basicConstraints CA=true)"),
    "intermediate is not a CA": (
        lambda t, c: pem(_leaf(t, c, *GOOD), _intermediate(t, ca=False)),
        ": the chain's certificate 1 (CN=Fake Intermediate E1) is not a CA"),
    "intermediate expired": (
        lambda t, c: pem(_leaf(t, c, *GOOD), _intermediate(t, start=-400 * DAY,
                                                           end=-30 * DAY)),
        ": the chain's certificate 1 (CN=Fake Intermediate E1) expired at "),
}


@pytest.mark.parametrize("case", CASES)
def test_unusable_certificate_keeps_the_working_one(ca: FakeCA, h: Harness,
                                                    case: str) -> None:
    before = h.issue_good()
    make, reason, *more = CASES[case]
    ca.issue_chain = lambda csr: make(ca.pki, csr)
    h.refused(*h.issue("--force"), f"x.example: {ca.url('/cert/1')}{reason}", *more,
              before=before)
    assert ca.count("POST /cert/1") == 2  # it was downloaded, then refused
