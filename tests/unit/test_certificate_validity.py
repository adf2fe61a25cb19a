"""certfleet.certs: a chain that is signed right but unusable is refused (RFC 5280 §4.1.2.5
validity, §4.2.1.9 basicConstraints, §4.2.1.3 keyUsage): a leaf not valid now or for too
short a time, a leaf that is a CA, an issuer that is no CA or is not valid now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certfleet.certs import verify_issued, verify_kept
from certfleet.errors import CertificateError

from .pki import new_key

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
NAMES = ["www.example.com"]
DAY, HOUR, MINUTE, SECOND = (timedelta(days=1), timedelta(hours=1), timedelta(minutes=1),
                             timedelta(seconds=1))
ROOT_KEY, INTER_KEY, LEAF_KEY = new_key(), new_key(), new_key()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, issuer: str, key: Any, signer: ec.EllipticCurvePrivateKey, *,
          start: timedelta, end: timedelta, ca: bool | None, path_length: int | None = None,
          usage: x509.KeyUsage | None = None, names: list[str] | None = None,
          now: datetime = NOW) -> bytes:
    """A certificate valid from ``now + start`` to ``now + end``; ``ca`` None: no
    basicConstraints at all."""
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + start).not_valid_after(now + end))
    if ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None),
            critical=True)
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(signer, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False,
                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                         key_cert_sign=cert_sign, crl_sign=True, encipher_only=False,
                         decipher_only=False)


def root(**kw: Any) -> bytes:
    settings: dict[str, Any] = {"start": -365 * DAY, "end": 3650 * DAY, "ca": True} | kw
    return _cert("Test Root", "Test Root", ROOT_KEY, ROOT_KEY, **settings)


def inter(**kw: Any) -> bytes:
    settings: dict[str, Any] = {"start": -30 * DAY, "end": 1000 * DAY, "ca": True} | kw
    return _cert("Test Intermediate", "Test Root", INTER_KEY, ROOT_KEY, **settings)


def leaf(**kw: Any) -> bytes:
    settings: dict[str, Any] = {"start": -HOUR, "end": 90 * DAY, "ca": None,
                                "names": NAMES} | kw
    return _cert(NAMES[0], "Test Intermediate", LEAF_KEY, INTER_KEY, **settings)


def verify(chain: bytes, now: datetime | None = NOW) -> object:
    return verify_issued(chain, LEAF_KEY.public_key(), NAMES, "t", now)


def refused(chain: bytes, message: str, now: datetime | None = NOW) -> None:
    with pytest.raises(CertificateError) as info:
        verify(chain, now)
    assert str(info.value) == message


# -- the leaf's dates ------------------------------------------------------------------------

def test_an_expired_leaf_is_refused() -> None:
    refused(leaf(start=-100 * DAY, end=-10 * DAY) + inter(),
            "t: certificate expired at 2025-05-22 12:00:00 UTC")


def test_a_leaf_ending_now_is_expired() -> None:
    refused(leaf(start=-90 * DAY, end=timedelta(0)) + inter(),
            "t: certificate expired at 2025-06-01 12:00:00 UTC")


def test_a_leaf_valid_only_years_from_now_is_refused() -> None:
    """Activated, it would serve a certificate no client accepts, and renewal would wait
    for its far-off end."""
    refused(leaf(start=3650 * DAY, end=3740 * DAY) + inter(),
            "t: certificate not valid until 2035-05-30 12:00:00 UTC: the CA's clock or the "
            "certificate is wrong")


@pytest.mark.parametrize(("start", "accepted"), [
    (-DAY, True), (59 * MINUTE, True), (HOUR, True), (HOUR + SECOND, False), (2 * HOUR, False),
])
def test_a_leaf_may_start_up_to_an_hour_ahead_of_our_clock(start: timedelta,
                                                           accepted: bool) -> None:
    chain = leaf(start=start) + inter()
    if accepted:
        verify(chain)
    else:
        with pytest.raises(CertificateError, match=r"^t: certificate not valid until "):
            verify(chain)


def test_a_leaf_valid_for_one_second_is_refused() -> None:
    refused(leaf(start=-SECOND, end=SECOND) + inter(),
            "t: certificate valid for only 0:00:02 (2025-06-01 11:59:59 UTC to 2025-06-01 "
            "12:00:01 UTC), less than 1:00:00")


@pytest.mark.parametrize(("end", "accepted"), [
    (HOUR - SECOND, False), (HOUR, True),
])
def test_a_leaf_must_last_an_hour(end: timedelta, accepted: bool) -> None:
    chain = leaf(start=timedelta(0), end=end) + inter()
    if accepted:
        verify(chain)
    else:
        with pytest.raises(CertificateError, match=r"^t: certificate valid for only 0:59:59 "):
            verify(chain)


def test_a_leaf_expiring_within_the_hour_is_refused() -> None:
    """Long-lived but nearly over: it would replace a working certificate for minutes."""
    refused(leaf(start=-90 * DAY, end=30 * MINUTE) + inter(),
            "t: certificate expires at 2025-06-01 12:30:00 UTC, in less than 1:00:00")


def test_without_a_time_the_clock_is_asked() -> None:
    """The reviewer's case: valid -100 to -10 days by the clock (not by a time passed in)."""
    now = datetime.now(UTC)
    old = _cert(NAMES[0], "Test Intermediate", LEAF_KEY, INTER_KEY, start=-100 * DAY,
                end=-10 * DAY, ca=None, names=NAMES, now=now)
    current = _cert(NAMES[0], "Test Intermediate", LEAF_KEY, INTER_KEY, start=-HOUR,
                    end=90 * DAY, ca=None, names=NAMES, now=now)
    chain = _cert("Test Intermediate", "Test Root", INTER_KEY, ROOT_KEY, start=-DAY,
                  end=DAY * 1000, ca=True, now=now)
    with pytest.raises(CertificateError, match=r"^t: certificate expired at "):
        verify(old + chain, None)
    verify(current + chain, None)


# -- the leaf is no CA ---------------------------------------------------------------------

def test_a_leaf_that_is_a_ca_is_refused() -> None:
    refused(leaf(ca=True) + inter(),
            "t: the certificate is itself a CA certificate (basicConstraints CA=true)")


def test_a_leaf_that_says_it_is_no_ca_is_accepted_and_one_that_is_is_not() -> None:
    verify(leaf(ca=False) + inter())
    with pytest.raises(CertificateError, match="is itself a CA certificate"):
        verify(leaf(ca=True, path_length=0) + inter())


# -- every certificate after the leaf is a CA, valid now -------------------------------------

@pytest.mark.parametrize("ca", [False, None], ids=["CA=false", "no basicConstraints"])
def test_an_intermediate_that_is_not_a_ca_is_refused(ca: bool | None) -> None:
    refused(leaf() + inter(ca=ca),
            "t: the chain's certificate 1 (CN=Test Intermediate) is not a CA (no "
            "basicConstraints CA=true)")


def test_a_root_that_is_not_a_ca_is_refused() -> None:
    refused(leaf() + inter() + root(ca=False),
            "t: the chain's certificate 2 (CN=Test Root) is not a CA (no basicConstraints "
            "CA=true)")


def test_an_intermediate_whose_key_may_not_sign_certificates_is_refused() -> None:
    refused(leaf() + inter(usage=_usage(cert_sign=False)),
            "t: the chain's certificate 1 (CN=Test Intermediate) may not sign certificates "
            "(keyUsage without keyCertSign)")
    verify(leaf() + inter(usage=_usage(cert_sign=True)) + root(usage=_usage(cert_sign=True)))


def test_a_path_length_constraint_is_kept() -> None:
    refused(leaf() + inter() + root(path_length=0),
            "t: the chain's certificate 2 (CN=Test Root) allows 0 CA certificates below it "
            "(pathLenConstraint), not 1")
    verify(leaf() + inter(path_length=0) + root(path_length=1))


def test_an_expired_intermediate_is_refused() -> None:
    refused(leaf() + inter(start=-400 * DAY, end=-30 * DAY),
            "t: the chain's certificate 1 (CN=Test Intermediate) expired at 2025-05-02 "
            "12:00:00 UTC")


def test_an_intermediate_not_yet_valid_is_refused() -> None:
    refused(leaf() + inter(start=2 * HOUR),
            "t: the chain's certificate 1 (CN=Test Intermediate) not valid until 2025-06-01 "
            "14:00:00 UTC: the CA's clock or the certificate is wrong")
    verify(leaf() + inter(start=HOUR))  # the same allowance as the leaf's


def test_an_expired_root_at_the_end_is_refused() -> None:
    refused(leaf() + inter() + root(start=-3650 * DAY, end=-DAY),
            "t: the chain's certificate 2 (CN=Test Root) expired at 2025-05-31 12:00:00 UTC")


# -- what another client kept: the same roles, not the dates ---------------------------------

def test_kept_certificates_are_checked_for_roles_but_not_dates() -> None:
    """``certfleet import`` takes an expired certificate (then renews it), never a CA leaf."""
    def kept(cert: bytes, chain: bytes) -> object:
        return verify_kept(cert, chain, cert + chain, LEAF_KEY.public_key(), "dir")

    with pytest.raises(CertificateError, match=r"^dir: the certificate is itself a CA "):
        kept(leaf(ca=True), inter())
    with pytest.raises(CertificateError, match=r"^dir: the chain's certificate 1 .* is not a CA"):
        kept(leaf(), inter(ca=False))
    kept(leaf(start=-100 * DAY, end=-10 * DAY), inter(start=-400 * DAY, end=-30 * DAY))
