"""Secrets never reach any output, and the state directory is private, against a real Pebble.

Real scenarios at the highest verbosity (``-vv``, every logger captured at DEBUG, and
stderr): issue with an EC and an RSA key, a ``run`` deploying to a local target, a failing
validation, revocation by the account and by the certificate's own key, and one run as a
separate process with its real stderr. Then every byte of output, every log record (its
message, arguments and traceback) and every non-key file under the state directory and the
deploy target is searched for every private key on disk (PEM body lines, sliding windows of
the base64 of its DER, the private numbers as hex and as JWK base64url) and for every JWS
part certfleet sent (``protected``, ``payload``, ``signature``, recorded by wrapping
``AcmeClient.post``'s signer). None may appear anywhere.

Also: every private key file is 0600 and every directory under STATE 0700; a state directory
(or one below it) writable by group or others is refused with one clear line and nothing
sent to the CA; a symlink planted at ``STATE/challenges/<token>`` or at
``STATE/certs/<name>/state.json`` is never followed (the file it points to is unchanged).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certfleet.acme_client import AcmeClient
from certfleet.cli import main
from certfleet.protocol.b64 import b64url
from certfleet.solvers.token_dir import TokenDirSolver
from tests import waits

from .fleet_helpers import orders_seen, write_config

pytestmark = pytest.mark.integration

CLI_FORMAT = "certfleet: %(levelname)s: %(message)s"  # what -v/-vv print on stderr


class Recorder:
    """Everything certfleet said (stdout, stderr, logs) and every JWS it sent."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.logged = io.StringIO()
        self.jws: list[Mapping[str, Any]] = []
        self.handler = logging.StreamHandler(self.logged)
        self.handler.setFormatter(logging.Formatter(CLI_FORMAT))
        self.handler.setLevel(logging.DEBUG)

    def cli(self, *argv: str) -> tuple[int, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([*argv, "-vv"])
        self.stdout.append(out.getvalue())
        self.stderr.append(err.getvalue())
        print(f"$ certfleet {' '.join(argv)} -vv\n{out.getvalue()}[exit {rc}]")
        return rc, out.getvalue()

    def texts(self) -> dict[str, str]:
        """Every place output went, by name."""
        records = self.caplog.records
        return {
            "stdout": "".join(self.stdout),
            "stderr": "".join(self.stderr),
            "log (as -vv prints it)": self.logged.getvalue(),
            "caplog": self.caplog.text,
            "log record arguments": "\n".join(repr(r.args) for r in records),
            "log record tracebacks": "\n".join(r.exc_text or "" for r in records),
        }


@pytest.fixture
def recorder(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
             ) -> Iterator[Recorder]:
    rec = Recorder(caplog)
    original = AcmeClient.post

    async def post(self: AcmeClient, url: str, payload: Any, signer: Callable[..., Any],
                   accept: str | None = None) -> Any:
        def recording(u: str, nonce: str, p: Any) -> Mapping[str, Any]:
            jws = signer(u, nonce, p)
            rec.jws.append(dict(jws))
            return jws

        return await original(self, url, payload, recording, accept)

    monkeypatch.setattr(AcmeClient, "post", post)
    caplog.set_level(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(rec.handler)
    try:
        yield rec
    finally:
        root.removeHandler(rec.handler)


@pytest.fixture
def lab(pebble_lab_factory: Any) -> Any:
    return pebble_lab_factory(env={"PEBBLE_AUTHZREUSE": "0"})


def _common(lab: Any, state: Path) -> list[str]:
    return ["--state-dir", str(state), "--directory", lab.directory_url,
            "--ca-bundle", str(lab.ca_bundle)]


def _listen(lab: Any) -> list[str]:
    return ["--http-listen", f"127.0.0.1:{lab.http_port}"]


# -- what a secret looks like --------------------------------------------------------------------

def _is_key(data: bytes) -> bool:
    return b"PRIVATE KEY-----" in data


def key_needles(pem: bytes) -> set[str]:
    """Every form in which (part of) this private key could leak into text.

    Forms all keys of its type share (the encoding's header) are left out: finding one in
    a file could be another key of the same type, and so proves nothing about this one.
    """
    key = serialization.load_pem_private_key(pem, None)
    return _raw_needles(key, pem) - _structural(_kind(key))


def _kind(key: Any) -> tuple[str, int]:
    return ("ec" if isinstance(key, ec.EllipticCurvePrivateKey) else "rsa", key.key_size)


_CURVES = {256: ec.SECP256R1, 384: ec.SECP384R1}
_STRUCTURAL: dict[tuple[str, int], set[str]] = {}


def _structural(kind: tuple[str, int]) -> set[str]:
    """The needles three fresh keys of ``kind`` have in common: the encoding's header."""
    if kind not in _STRUCTURAL:
        found: set[str] | None = None
        for _ in range(3):
            other: Any = (ec.generate_private_key(_CURVES[kind[1]]()) if kind[0] == "ec"
                          else rsa.generate_private_key(65537, kind[1]))
            pem = other.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())
            needles = _raw_needles(other, pem)
            found = needles if found is None else found & needles
        _STRUCTURAL[kind] = found or set()
    return _STRUCTURAL[kind]


def _raw_needles(key: Any, pem: bytes) -> set[str]:
    body = [line.strip() for line in pem.decode().splitlines()
            if line.strip() and not line.startswith("-----")]
    needles = {line for line in body if len(line) >= 16}
    ders = {base64.b64decode("".join(body))}
    for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        ders.add(key.private_bytes(serialization.Encoding.DER, fmt,
                                   serialization.NoEncryption()))
    for der in ders:
        for encoded in (base64.b64encode(der).decode(), b64url(der)):
            needles.update(encoded[i:i + 24] for i in range(0, len(encoded) - 24, 8))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        numbers = [key.private_numbers().private_value]
    elif isinstance(key, rsa.RSAPrivateKey):
        private = key.private_numbers()
        numbers = [private.d, private.p, private.q]
    else:  # pragma: no cover - certfleet makes EC and RSA keys only
        raise AssertionError(type(key))
    for number in numbers:
        raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
        needles.update({b64url(raw)[:32], f"{number:x}"[:32], base64.b64encode(raw).decode()[:32]})
    # A key file also holds its public half, which certificates and JWKs show by design:
    # forms that are all public are no evidence of a leak.
    public = _public_forms(key)
    return {n for n in needles if not any(n in text for text in public)}


def _public_forms(key: Any) -> list[str]:
    pub = key.public_key()
    blobs = [pub.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        blobs.append(pub.public_bytes(serialization.Encoding.X962,
                                      serialization.PublicFormat.UncompressedPoint))
    else:
        blobs.append(pub.public_bytes(serialization.Encoding.DER,
                                      serialization.PublicFormat.PKCS1))
    forms = []
    for blob in blobs:
        for shift in range(3):  # base64 of a substring depends on its start modulo 3
            forms += [base64.b64encode(blob[shift:]).decode(), b64url(blob[shift:])]
        forms.append(blob.hex())
    return forms


def jws_needles(sent: list[Mapping[str, Any]]) -> set[str]:
    needles = set()
    for jws in sent:
        for part in ("protected", "payload", "signature"):
            value = jws.get(part)
            if isinstance(value, str) and len(value) >= 16:
                needles.add(value)
    return needles


def files_under(*roots: Path) -> tuple[dict[Path, bytes], dict[Path, bytes]]:
    """(private key files, every other regular file) under ``roots``, links not followed."""
    keys, others = {}, {}
    for root in roots:
        for folder, _dirs, names in os.walk(root):
            for name in names:
                path = Path(folder) / name
                if path.is_symlink() or not path.is_file():
                    continue
                data = path.read_bytes()
                (keys if _is_key(data) else others)[path] = data
    return keys, others


def assert_nowhere(needles: Mapping[str, set[str]], places: Mapping[str, str]) -> None:
    for secret, forms in needles.items():
        for where, text in places.items():
            found = sorted(form for form in forms if form in text)
            assert not found, f"{secret} appears in {where}: {found[:3]}"


@pytest.mark.parametrize("make", [lambda: ec.generate_private_key(ec.SECP256R1()),
                                  lambda: rsa.generate_private_key(65537, 2048)],
                         ids=["ec", "rsa"])
def test_the_search_finds_a_printed_key_and_not_its_public_half(make: Callable[[], Any]) -> None:
    """The needles are worth something: a key printed in any usual form is found; its
    public half (in a certificate or a JWK) is not mistaken for it."""
    key = make()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    needles = key_needles(pem)
    assert len(needles) >= 10
    der = key.private_bytes(serialization.Encoding.DER,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    numbers = key.private_numbers()
    secret = numbers.private_value if isinstance(key, ec.EllipticCurvePrivateKey) else numbers.d
    raw = secret.to_bytes((secret.bit_length() + 7) // 8, "big")
    printed = [pem.decode(), base64.encodebytes(der).decode(),  # 76-column lines
               f'{{"d": "{b64url(raw)}"}}', f"private value {secret:x}",
               base64.b64encode(der).decode()]
    for text in printed:
        assert any(n in text for n in needles), text[:80]
    public = "\n".join(_public_forms(key))
    assert not any(n in public for n in needles)


# -- the scenarios --------------------------------------------------------------------------------

def test_no_secret_in_any_output(lab: Any, tmp_path: Path, recorder: Recorder) -> None:
    state = tmp_path / "state"
    common = _common(lab, state)
    target = tmp_path / "deploy.secrets.example"  # the certificate's own directory
    target.mkdir()

    rc, out = recorder.cli("issue", "ec.secrets.example", "--key-type", "ec256", *common,
                           *_listen(lab))
    assert rc == 0, out
    rc, out = recorder.cli("issue", "rsa.secrets.example", "www.rsa.secrets.example",
                           "--key-type", "rsa2048", *common, *_listen(lab))
    assert rc == 0, out

    domains = tmp_path / "domains.txt"
    domains.write_text(f"deploy.secrets.example | {target}\n")
    config = write_config(tmp_path / "certfleet.toml", lab, state, domains)
    rc, out = recorder.cli("run", "--config", str(config))
    assert rc == 0, out
    assert out.splitlines()[0].endswith("deployed to 1/1 targets")

    lab.add_a("bad.secrets.example", "127.0.0.2")
    try:
        rc, out = recorder.cli("issue", "bad.secrets.example", *common, *_listen(lab))
    finally:
        lab.clear_a("bad.secrets.example")
    assert rc == 1
    assert "bad.secrets.example: validation failed" in out

    rc, out = recorder.cli("revoke", "ec.secrets.example", "--reason", "keyCompromise",
                           *common)
    assert rc == 0, out
    rc, out = recorder.cli("revoke", "rsa.secrets.example", "--with-cert-key", *common)
    assert rc == 0, out

    # The scenarios really ran at -vv: every request was logged, and every JWS recorded.
    logged = recorder.logged.getvalue()
    assert "certfleet: DEBUG: POST " in logged
    assert "certfleet: INFO: " in logged
    assert len(recorder.jws) >= 20

    keys, others = files_under(state, target)
    account_keys = [p for p in keys if p.name.startswith("account.key")]
    assert len(account_keys) == 1
    assert {p.name for p in keys} >= {"account.key", "privkey.pem"}
    assert any("pending" in p.parts for p in keys)  # the failed attempt's key, kept
    assert len(keys) == 6  # account, ec, rsa, deploy (+ its copy at the target), pending
    needles = {f"private key {p.relative_to(tmp_path)}": key_needles(data)
               for p, data in keys.items()}
    needles["JWS parts sent to the CA"] = jws_needles(recorder.jws)
    places = {**recorder.texts(),
              **{f"file {p.relative_to(tmp_path)}": d.decode("utf-8", "replace")
                 for p, d in others.items()}}
    assert any(p.name == "state.json" for p in others)
    assert any(p.name == "meta.json" for p in others)
    assert any(p.name == "account.json" for p in others)
    assert_nowhere(needles, places)

    # The deploy target holds that certificate's own key and no other.
    deployed = keys[target / "privkey.pem"]
    own = (state / "certs" / "deploy.secrets.example" / "privkey.pem").read_bytes()
    assert deployed == own
    for path in account_keys:
        assert not any(n in deployed.decode() for n in key_needles(keys[path]))


def test_no_secret_on_a_real_stderr(lab: Any, tmp_path: Path) -> None:
    """The same, as a separate process: its stderr at -vv is what an operator's log gets."""
    state = tmp_path / "state"
    proc = subprocess.run(
        [sys.executable, "-m", "certfleet", "issue", "proc.secrets.example", "-vv",
         *_common(lab, state), *_listen(lab)],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "certfleet: DEBUG: POST " in proc.stderr
    keys, others = files_under(state)
    assert len(keys) == 2
    needles = {f"private key {p.name}": key_needles(d) for p, d in keys.items()}
    places = {"stdout": proc.stdout, "stderr": proc.stderr,
              **{f"file {p}": d.decode("utf-8", "replace") for p, d in others.items()}}
    assert_nowhere(needles, places)


# -- modes -----------------------------------------------------------------------------------------

def test_key_files_0600_and_directories_0700(lab: Any, tmp_path: Path) -> None:
    state = tmp_path / "state"
    old = os.umask(0o002)  # a lax umask: certfleet must not rely on the caller's
    try:
        for args in (["modes.secrets.example"], ["modes.secrets.example", "--force"],
                     ["rsa-modes.secrets.example", "--key-type", "rsa2048"]):
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                rc = main(["issue", *args, *_common(lab, state), *_listen(lab)])
            assert rc == 0, out.getvalue()
    finally:
        os.umask(old)
    keys, _ = files_under(state)
    assert len(keys) == 4  # the account key, two versions of one, one of the other
    for path in keys:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    directories = [Path(folder) / d for folder, dirs, _ in os.walk(state) for d in dirs]
    assert len(directories) >= 9
    for path in [state, *directories]:
        if not path.is_symlink():
            assert stat.S_IMODE(path.lstat().st_mode) == 0o700, path


@pytest.mark.parametrize(("where", "mode"), [
    ("", 0o770), ("", 0o707), ("", 0o777), ("certs", 0o775),
    ("certs/shared.secrets.example", 0o720), ("accounts", 0o702), ("challenges", 0o777),
])
def test_a_state_directory_others_can_write_is_refused(lab: Any, tmp_path: Path, where: str,
                                                       mode: int) -> None:
    state = tmp_path / "state"
    (state / "certs" / "shared.secrets.example").mkdir(parents=True, mode=0o700)
    for sub in ("accounts", "challenges"):
        (state / sub).mkdir(mode=0o700)
    state.chmod(0o700)
    victim = state / where
    victim.chmod(mode)
    orders = orders_seen(lab)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main(["issue", "shared.secrets.example", *_common(lab, state), *_listen(lab)])
    assert rc == 1
    # The certificate's own directory fails that certificate; any other fails the command.
    label = "shared.secrets.example: failed" if where.startswith("certs/") else "certfleet"
    assert out.getvalue().splitlines()[0] == (f"{label}: {str(victim).rstrip('/')}: "
                                              "writable by group or others; refusing to use it")
    assert orders_seen(lab) == orders
    assert not list(state.rglob("*.key"))


def test_a_symlinked_state_directory_is_refused(lab: Any, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "state"
    link.symlink_to(real)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main(["issue", "link.secrets.example", *_common(lab, link), *_listen(lab)])
    assert rc == 1
    assert out.getvalue() == (f"certfleet: {link}: not a directory "
                              "(symlinks are not followed)\n")
    assert list(real.iterdir()) == []


# -- planted symlinks ------------------------------------------------------------------------------

def _free_port_ready(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        time.sleep(0.05)
    return False


def test_symlink_planted_at_a_challenge_token_is_not_followed(
        lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``[challenge] mode = "serve"``: tokens are files in STATE/challenges for a separate
    ``certfleet serve``. A symlink planted at the token's name, pointing outside, just
    before certfleet writes the token: the outside file is unchanged, validation works."""
    state = tmp_path / "state"
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious\n")
    planted: list[Path] = []
    original = TokenDirSolver.present

    async def present(self: TokenDirSolver, name: str, token: str, key_auth: str) -> None:
        link = self.directory / token
        link.symlink_to(outside)
        planted.append(link)
        await original(self, name, token, key_auth)

    monkeypatch.setattr(TokenDirSolver, "present", present)
    server = subprocess.Popen(
        [sys.executable, "-m", "certfleet", "serve", "--listen",
         f"127.0.0.1:{lab.http_port}", "--state-dir", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert _free_port_ready(lab.http_port, time.monotonic() + waits.PROCESS), \
            "serve did not start"
        domains = tmp_path / "domains.txt"
        domains.write_text("token.secrets.example\n")
        config = write_config(tmp_path / "certfleet.toml", lab, state, domains,
                              sections={"challenge": {"mode": "serve"}})
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            rc = main(["run", "--config", str(config)])
        assert rc == 0, out.getvalue()
    finally:
        server.terminate()
        server.communicate(timeout=waits.PROCESS)
    assert len(planted) == 1
    assert outside.read_bytes() == b"precious\n"
    assert not planted[0].exists()
    assert not planted[0].is_symlink()
    assert list((state / "challenges").iterdir()) == []


def test_symlink_planted_at_state_json_is_not_followed(lab: Any, tmp_path: Path) -> None:
    state = tmp_path / "state"
    name = "statefile.secrets.example"
    common = [*_common(lab, state), *_listen(lab)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        assert main(["issue", name, *common]) == 0, out.getvalue()
    state_json = state / "certs" / name / "state.json"
    outside = tmp_path / "outside.json"
    outside.write_text('{"outside": true}\n')
    state_json.unlink(missing_ok=True)
    state_json.symlink_to(outside)
    before = os.readlink(state / "certs" / name / "current")
    orders = orders_seen(lab)
    for argv in (["issue", name, "--force", *common], ["status", "--state-dir", str(state)]):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            rc = main(argv)
        assert outside.read_text() == '{"outside": true}\n'
        assert rc == 1
        label = f"{name}: failed" if argv[0] == "issue" else f"{name}: DAMAGED"
        assert out.getvalue().splitlines()[0] == (
            f"{label}: {state_json}: cannot read: Too many levels of symbolic links")
        assert state_json.is_symlink()
    assert os.readlink(state / "certs" / name / "current") == before
    assert orders_seen(lab) == orders


def test_a_revocation_that_cannot_be_recorded_is_not_sent(lab: Any, tmp_path: Path) -> None:
    """``revoke`` reports "failed" when it cannot read or write the certificate's state
    record (here: a planted symlink, refused). "failed" must then mean "not done": had the
    CA revoked it anyway, the revocation would be recorded nowhere, and the next run would
    keep serving and deploying a certificate the CA has revoked."""
    state = tmp_path / "state"
    name = "revoke-state.secrets.example"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        assert main(["issue", name, *_common(lab, state), *_listen(lab)]) == 0, out.getvalue()
    serial = int(json.loads((state / "certs" / name / "current" / "meta.json").read_text())[
        "serial"], 16)
    state_json = state / "certs" / name / "state.json"
    state_json.unlink(missing_ok=True)
    state_json.symlink_to(tmp_path / "elsewhere.json")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main(["revoke", name, *_common(lab, state)])
    assert rc == 1
    assert out.getvalue().startswith(f"{name}: failed: {state_json}: ")
    assert lab.cert_status(serial)["Status"] == "Valid"


# -- other local users -----------------------------------------------------------------------------

@pytest.mark.parametrize("which", ["certfleet.toml", "domains.txt"])
def test_a_configuration_others_can_write_is_refused(tmp_path: Path, which: str) -> None:
    """certfleet.toml names the commands certfleet runs (reload, DNS hooks); the domains
    file names where private keys are copied. Either one writable by another local user
    hands that user the operator's powers and the keys, as a state directory others can
    write would (and that one is refused). Checked offline: ``run --dry-run``."""
    domains = tmp_path / "domains.txt"
    domains.write_text(f"www.example.com | {tmp_path / 'target'}\n")
    config = tmp_path / "certfleet.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\ndomains = "{domains}"\n'
                      '[challenge]\nwebroot = "/var/www/acme"\n'
                      '[hosts.default]\nreload = ["/usr/sbin/nginx", "-s", "reload"]\n')
    for path in (config, domains):
        path.chmod(0o644)
    victim = tmp_path / which
    victim.chmod(0o666)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        rc = main(["run", "--config", str(config), "--dry-run"])
    assert rc == 1, out.getvalue()
    assert str(victim) in out.getvalue()
    assert "writable by" in out.getvalue()
