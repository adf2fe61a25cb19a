"""``certfleet issue --csr FILE``: every way the operator's CSR can be unusable is one line on
stderr naming the file and the fault, exit 1, before any network and before the state
directory is made. Real files on disk (a FIFO, a directory, a file just over the limit);
the CA is a listening socket that nothing may connect to."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from certfleet.cli.certs import CSR_LIMIT
from tests.cli import run_main


def _csr(names: Sequence[str] = ("csr.example.com",), *, key: object = None,
         cn: str | None = None, san: bool = True) -> x509.CertificateSigningRequest:
    signer = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    algorithm = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(signer, algorithm)  # type: ignore[arg-type]


def _pem(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.PEM)


def _issue(tmp_path: Path, ca: socket.socket, *argv: str) -> tuple[int, str, str]:
    rc, out, err = run_main(["issue", *argv, "--state-dir", str(tmp_path / "state"),
                             "--directory", f"http://127.0.0.1:{ca.getsockname()[1]}/dir",
                             "--insecure-http", "--webroot", str(tmp_path)])
    print(f"[exit {rc}]\n{out}{err}")
    return rc, out, err


def _refused(tmp_path: Path, ca: socket.socket, result: tuple[int, str, str],
             message: str) -> None:
    """Exit 1, nothing on stdout, exactly ``certfleet: <message>`` on stderr; no state
    directory made and the CA never contacted."""
    assert result == (1, "", f"certfleet: {message}\n")
    assert not (tmp_path / "state").exists()
    with pytest.raises(BlockingIOError):
        ca.accept()


def test_a_missing_csr_file(tmp_path: Path, silent_ca: socket.socket) -> None:
    path = tmp_path / "nope.csr"
    _refused(tmp_path, silent_ca, _issue(tmp_path, silent_ca, "--csr", str(path)),
             f"--csr {path}: no such file")


def test_a_csr_whose_signature_does_not_verify(tmp_path: Path,
                                               silent_ca: socket.socket) -> None:
    der = bytearray(_csr().public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte of the signature: still a well-formed CSR
    path = tmp_path / "tampered.der"
    path.write_bytes(bytes(der))
    _refused(tmp_path, silent_ca, _issue(tmp_path, silent_ca, "--csr", str(path)),
             f"{path}: the CSR's signature does not verify")


LONG = "a" * 64 + ".example.com"


@pytest.mark.parametrize(("names", "reason"), [
    (["localhost"], "'localhost': a name needs at least two labels"),
    (["ok.example.com", "a_b.example.com"],
     "'a_b.example.com': label 'a_b' is not letters, digits and hyphens"),
    (["a..example.com"], "'a..example.com': empty label"),
    ([LONG], f"'{LONG}': label longer than 63 characters"),
])
def test_a_csr_naming_a_name_certfleet_refuses(tmp_path: Path, silent_ca: socket.socket,
                                               names: list[str], reason: str) -> None:
    path = tmp_path / "names.csr"
    path.write_bytes(_pem(_csr(names)))
    _refused(tmp_path, silent_ca, _issue(tmp_path, silent_ca, "--csr", str(path)),
             f"{path}: {reason}")


def test_a_csr_for_a_wildcard_needs_dns01(tmp_path: Path, silent_ca: socket.socket) -> None:
    """A wildcard can only be validated by dns-01: refused before an order, as a wildcard
    on the command line or in the domains file is, wherever it stands among the names."""
    path = tmp_path / "wild.csr"
    path.write_bytes(_pem(_csr(["example.com", "*.example.com"])))
    _refused(tmp_path, silent_ca, _issue(tmp_path, silent_ca, "--csr", str(path)),
             "*.example.com: a wildcard needs challenge dns-01 (set challenge = \"dns-01\" "
             "in [certs.\"example.com\"] or [defaults])")


def test_a_wildcard_after_the_first_name_on_the_command_line_needs_dns01(
        tmp_path: Path, silent_ca: socket.socket) -> None:
    _refused(tmp_path, silent_ca, _issue(tmp_path, silent_ca, "example.com", "*.example.com"),
             "*.example.com: a wildcard needs challenge dns-01 (set challenge = \"dns-01\" "
             "in [certs.\"example.com\"] or [defaults])")


def test_a_csr_that_names_no_domain(tmp_path: Path, silent_ca: socket.socket) -> None:
    path = tmp_path / "anonymous.csr"
    path.write_bytes(_pem(_csr(san=False)))
    _refused(tmp_path, silent_ca, _issue(tmp_path, silent_ca, "--csr", str(path)),
             f"{path}: the CSR names no domain")


@pytest.mark.parametrize(("key", "reason"), [
    (ed25519.Ed25519PrivateKey.generate, "only RSA and ECDSA keys are supported"),
    (lambda: ec.generate_private_key(ec.SECP521R1()),
     "elliptic curve secp521r1 is not supported; use P-256 or P-384"),
    (lambda: rsa.generate_private_key(65537, 1024), "RSA key of 1024 bits; use 2048, 3072 or "
                                                    "4096"),
])
def test_a_csr_with_a_key_certfleet_does_not_use(tmp_path: Path, silent_ca: socket.socket,
                                                 key: object, reason: str) -> None:
    path = tmp_path / "key.csr"
    path.write_bytes(_pem(_csr(key=key())))  # type: ignore[operator]
    _refused(tmp_path, silent_ca, _issue(tmp_path, silent_ca, "--csr", str(path)),
             f"{path}: {reason}")


def test_a_csr_file_over_the_limit(tmp_path: Path, silent_ca: socket.socket) -> None:
    """A PEM CSR padded with text after it, one byte over the limit; the same file one
    byte shorter is read (and then fails only later, on purpose, for its one-label name)."""
    body = _pem(_csr(["localhost"]))
    path = tmp_path / "big.csr"
    path.write_bytes(body + b"#" * (CSR_LIMIT + 1 - len(body)))
    _refused(tmp_path, silent_ca, _issue(tmp_path, silent_ca, "--csr", str(path)),
             f"--csr {path}: larger than {CSR_LIMIT} bytes")
    path.write_bytes(body + b"#" * (CSR_LIMIT - len(body)))
    rc, _, err = _issue(tmp_path, silent_ca, "--csr", str(path))
    assert rc == 1
    assert "a name needs at least two labels" in err


def test_a_fifo_in_place_of_the_csr_does_not_hang(tmp_path: Path,
                                                  silent_ca: socket.socket) -> None:
    """Nothing writes to the FIFO: a blocking open would wait for ever. The command runs in
    a thread so that a hang fails the test instead of stopping the suite."""
    path = tmp_path / "csr.fifo"
    os.mkfifo(path)
    result: list[tuple[int, str, str]] = []
    worker = threading.Thread(
        target=lambda: result.append(_issue(tmp_path, silent_ca, "--csr", str(path))),
        daemon=True)
    worker.start()
    worker.join(60)  # generous: the refusal takes milliseconds; only a hang reaches this
    if worker.is_alive():
        with open(path, "wb"):  # a writer lets a blocked open return
            pass
        worker.join(10)
        pytest.fail("issue --csr FIFO hung waiting for a writer")
    _refused(tmp_path, silent_ca, result[0], f"--csr {path}: not a regular file")


def test_a_directory_in_place_of_the_csr(tmp_path: Path, silent_ca: socket.socket) -> None:
    path = tmp_path / "csr.d"
    path.mkdir()
    _refused(tmp_path, silent_ca, _issue(tmp_path, silent_ca, "--csr", str(path)),
             f"--csr {path}: not a regular file")


def test_names_beside_a_csr_are_refused(tmp_path: Path, silent_ca: socket.socket) -> None:
    path = tmp_path / "ok.csr"
    path.write_bytes(_pem(_csr()))
    _refused(tmp_path, silent_ca, _issue(tmp_path, silent_ca, "other.example.com", "--csr",
                                         str(path)),
             "--csr: the names come from the CSR; give no NAME")


def test_a_csr_naming_one_name_twice_is_one_name(tmp_path: Path) -> None:
    """The CN repeats the SAN's name (as most tools write it), and the SAN names it twice in
    two spellings: one name to order."""
    from certfleet.keys import load_csr

    path = tmp_path / "dup.csr"
    path.write_bytes(_pem(_csr(["dup.example.com", "DUP.example.com"], cn="dup.example.com")))
    assert load_csr(path.read_bytes(), str(path))[1] == ("dup.example.com",)
