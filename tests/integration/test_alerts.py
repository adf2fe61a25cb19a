"""After a run: the hook, the mail (a real SMTP server with STARTTLS and AUTH), the expiry
alarm and the Prometheus textfile (checked by promtool and by the text format's rules)."""

from __future__ import annotations

import datetime as dt
import email
import json
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certfleet.store import PEM_FILES, Store, VersionMeta
from tests.cli import run_main
from tests.conftest import missing

from .fleet_helpers import toml_value, write_config

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
PROMTOOL = REPO / ".cache" / "promtool" / "root" / "usr" / "bin" / "promtool"
NOW = dt.datetime.now(dt.UTC)


# -- a real SMTP server ------------------------------------------------------------------------

def _tls_material(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail test CA")])
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(NOW - dt.timedelta(hours=1))
          .not_valid_after(NOW + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(hours=1))
            .not_valid_after(NOW + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[Inbox, int, Path]]:
    """An SMTP server that offers STARTTLS and accepts user 'certfleet' with 's3cret' only
    after it (aiosmtpd's defaults: no AUTH over plain text)."""
    ca, cert, key = _tls_material(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()

    def authenticate(server: Any, session: Session, envelope: Envelope, mechanism: str,
                     data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"certfleet", b"s3cret")
        inbox.logins.append(data.login.decode() if isinstance(data, LoginPassword) else "?")
        return AuthResult(success=ok, handled=False)  # not handled: the server says 535

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=context,
                            require_starttls=True, authenticator=authenticate,
                            auth_required=True)
    controller.start()
    try:
        yield inbox, port, ca
    finally:
        controller.stop()


# -- a fleet that fails, for the alerts -----------------------------------------------------------

def _failing_fleet(lab: Any, tmp_path: Path, notify: dict[str, Any]) -> Path:
    """One certificate that validates and one whose name points nowhere."""
    lab.add_a("nowhere.alerts.example.com", "127.0.0.2")
    domains = tmp_path / "domains.txt"
    domains.write_text("fine.alerts.example.com\nnowhere.alerts.example.com\n")
    return write_config(tmp_path / "certfleet.toml", lab, tmp_path / "state", domains,
                        sections={"notify": notify})


def test_the_hook_hears_failures_and_renewals_as_json(pebble: Any, tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    hook = tmp_path / "hook.py"
    hook.write_text(f"import sys\nopen({str(seen)!r}, 'a').write(sys.stdin.read())\n")
    config = _failing_fleet(pebble, tmp_path, {
        "hook": [sys.executable, str(hook)], "hook_events": ["failure", "renewal"]})
    rc, out, err = run_main(["run", "--config", str(config)])
    assert rc == 1, out + err
    report = json.loads(seen.read_text())
    assert report["events"] == ["failure", "renewal"]
    by_name = {c["name"]: c for c in report["certificates"]}
    assert by_name["fine.alerts.example.com"]["events"] == ["renewal"]
    assert by_name["nowhere.alerts.example.com"]["events"] == ["failure"]
    assert "validation failed" in by_name["nowhere.alerts.example.com"]["error"]
    assert report["summary"] == "2 certificates: 1 failed, 1 issued"
    # A hook that fails or hangs is a warning, not the run's failure; it is bounded.
    hook.write_text("import time\ntime.sleep(60)\n")
    text = config.read_text().replace("[notify]", "[notify]\nhook_timeout = 1", 1)
    config.write_text(text)
    rc, out, err = run_main(["run", "--force", "--config", str(config),
                             "fine.alerts.example.com"])
    assert rc == 0  # the hook listens for renewals too, and is killed after a second
    assert "notify hook" in err
    assert "still running after 1 s; killed" in err


def test_the_hook_hears_a_deploy_failure(pebble: Any, tmp_path: Path) -> None:
    """Issued, but one target cannot take the files: the hook listening for deploy
    failures alone hears it, with the target and the reason."""
    seen = tmp_path / "seen.json"
    hook = tmp_path / "hook.py"
    hook.write_text(f"import sys\nopen({str(seen)!r}, 'a').write(sys.stdin.read())\n")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the target directory should be\n")
    good = tmp_path / "good"
    good.mkdir()
    domains = tmp_path / "domains.txt"
    domains.write_text(f"deploy.alerts.example.com|{good} {blocker / 'certs'}\n")
    config = write_config(tmp_path / "certfleet.toml", pebble, tmp_path / "state", domains,
                          sections={"notify": {"hook": [sys.executable, str(hook)],
                                               "hook_events": ["deploy_failure"]}})
    rc, out, err = run_main(["run", "--config", str(config)])
    assert rc == 1, out + err
    report = json.loads(seen.read_text())
    assert report["events"] == ["deploy_failure", "renewal"]
    (cert,) = report["certificates"]
    assert cert["events"] == ["renewal", "deploy_failure"]
    by_target = {d["target"]: d for d in cert["deployed"]}
    assert by_target[str(good)]["ok"] is True
    failed = by_target[str(blocker / "certs")]
    assert failed["ok"] is False
    assert failed["error"].endswith(f"{blocker} is a regular file, not a directory")
    assert (good / "deploy.alerts.example.com" / "fullchain.pem").exists()


def test_a_quiet_run_tells_nobody(pebble: Any, tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    hook = tmp_path / "hook.py"
    hook.write_text(f"import sys\nopen({str(seen)!r}, 'a').write(sys.stdin.read())\n")
    domains = tmp_path / "domains.txt"
    domains.write_text("calm.alerts.example.com\n")
    config = write_config(tmp_path / "certfleet.toml", pebble, tmp_path / "state", domains,
                          sections={"notify": {"hook": [sys.executable, str(hook)]}})
    assert run_main(["run", "--config", str(config)])[0] == 0   # a renewal: not listened for
    assert run_main(["run", "--config", str(config)])[0] == 2   # nothing to do
    assert not seen.exists()


def test_mail_through_smtp_with_starttls_and_a_password_file(
        pebble: Any, tmp_path: Path, smtp: tuple[Inbox, int, Path]) -> None:
    inbox, port, ca = smtp
    secret = tmp_path / "smtp.secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    config = _failing_fleet(pebble, tmp_path, {
        "mail": "smtp", "mail_to": ["ops@example.com"], "mail_from": "cf@example.com",
        "smtp_server": f"127.0.0.1:{port}", "smtp_user": "certfleet",
        "smtp_password_file": str(secret), "smtp_ca_bundle": str(ca)})
    rc, out, err = run_main(["run", "--config", str(config)])
    assert rc == 1
    assert "mail:" not in err, err
    (mail,) = inbox.messages
    assert inbox.logins == ["certfleet"]
    assert mail["To"] == "ops@example.com"
    assert mail["Subject"].startswith("certfleet on ")
    assert mail["Subject"].endswith(": failure, renewal: 2 certificates: 1 failed, 1 issued")
    parts = {p.get_content_type(): p for p in mail.walk()}
    body = parts["text/plain"].get_payload(decode=True).decode()
    assert "nowhere.alerts.example.com: failure: " in body
    attached = json.loads(parts["application/json"].get_payload(decode=True))
    assert attached["events"] == ["failure", "renewal"]  # the run's, not just what it heard
    assert "s3cret" not in out + err
    # A wrong password is one warning line naming the server, and never shows the password.
    secret.write_text("wrong\n")
    rc, out, err = run_main(["run", "--force", "--config", str(config),
                             "nowhere.alerts.example.com"])
    assert f"mail: SMTP 127.0.0.1:{port}: authentication refused for certfleet" in err
    assert "wrong" not in err.replace("refused", "")


def test_mail_through_sendmail(pebble: Any, tmp_path: Path) -> None:
    """sendmail's contract: the whole message on stdin, recipients from it (-t)."""
    spool = tmp_path / "spool"
    sendmail = tmp_path / "sendmail"
    sendmail.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" > {spool}.args\ncat > {spool}\n")
    sendmail.chmod(0o755)
    config = _failing_fleet(pebble, tmp_path, {
        "mail": "sendmail", "mail_to": ["ops@example.com"], "sendmail": [str(sendmail)]})
    assert run_main(["run", "--config", str(config)])[0] == 1
    assert Path(f"{spool}.args").read_text() == "-t -oi\n"
    mail = email.message_from_bytes(spool.read_bytes())
    assert mail["To"] == "ops@example.com"


# -- the expiry alarm and the metrics file --------------------------------------------------------

def _failing_near_the_end(root: Path, name: str, days_left: int) -> Store:
    store = Store(root)
    meta = VersionMeta(
        version=1, names=(name,), key_type="ec256", serial=0xABC, issuer="CN=Test",
        not_before=(NOW - dt.timedelta(days=90 - days_left)).isoformat(),
        not_after=(NOW + dt.timedelta(days=days_left)).isoformat(), aki="",
        issued_at=(NOW - dt.timedelta(days=90 - days_left)).isoformat(),
        directory="http://127.0.0.1:9/dir", order_url="")
    store.activate(name, dict.fromkeys(PEM_FILES, b"x\n"), meta)
    assert store.try_lock(name)
    for _ in range(3):
        store.update_state(name, lambda s: s.after_attempt(NOW, "renewed", "CA unreachable",
                                                           asked_ca=True))
    store.unlock(name)
    return store


def test_the_expiry_alarm_goes_off_once_a_day(tmp_path: Path) -> None:
    store = _failing_near_the_end(tmp_path / "state", "late.example.com", days_left=4)
    _failing_near_the_end(tmp_path / "state", "early.example.com", days_left=60)
    seen = tmp_path / "seen.jsonl"
    hook = tmp_path / "hook.py"
    hook.write_text("import json, sys\n"
                    f"open({str(seen)!r}, 'a').write(json.dumps(json.load(sys.stdin)) + '\\n')\n")
    domains = tmp_path / "domains.txt"
    domains.write_text("late.example.com\nearly.example.com\n")
    config = tmp_path / "certfleet.toml"
    config.write_text(f"state_dir = {toml_value(str(store.root))}\n"
                      f"domains = {toml_value(str(domains))}\n"
                      "[ca]\ndirectory = \"http://127.0.0.1:9/dir\"\nallow_http = true\n"
                      "[challenge]\nwebroot = \"/nonexistent\"\n"
                      f"[notify]\nhook = [{toml_value(sys.executable)}, {toml_value(str(hook))}]\n")
    for _ in range(2):
        run_main(["run", "--config", str(config)])
    reports = [json.loads(line) for line in seen.read_text().splitlines()]
    assert reports[0]["events"] == ["expiring"]
    assert [e["name"] for e in reports[0]["expiring"]] == ["late.example.com"]
    assert reports[0]["expiring"][0]["failures"] == 3
    assert len(reports) == 1  # the second run is within the day: no second alarm
    assert store.load_state("late.example.com").alarm_at is not None


def test_the_metrics_file_is_valid_for_prometheus(tmp_path: Path) -> None:
    if not PROMTOOL.is_file():
        missing(f"{PROMTOOL} missing: run scripts/install-test-components")
    store = _failing_near_the_end(tmp_path / "state", "late.example.com", days_left=4)
    _failing_near_the_end(tmp_path / "state", 'odd"name.example.com'.replace('"', ""), 50)
    target = tmp_path / 'site "quoted"\\dir'
    domains = tmp_path / "domains.txt"
    domains.write_text(f"late.example.com|{tmp_path / 'late.example.com'}\n"
                       "oddname.example.com\n")
    metrics = tmp_path / "node" / "certfleet.prom"
    metrics.parent.mkdir()
    config = tmp_path / "certfleet.toml"
    config.write_text(f"state_dir = {toml_value(str(store.root))}\n"
                      f"domains = {toml_value(str(domains))}\n"
                      "[ca]\ndirectory = \"http://127.0.0.1:9/dir\"\nallow_http = true\n"
                      "[challenge]\nwebroot = \"/nonexistent\"\n"
                      f"[metrics]\ntextfile = {toml_value(str(metrics))}\n")
    del target
    run_main(["run", "--config", str(config)])
    text = metrics.read_text()
    check = subprocess.run([str(PROMTOOL), "check", "metrics"], input=text, text=True,
                           capture_output=True, check=False, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert oct(metrics.stat().st_mode & 0o777) == "0o644"
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines()
                   if not line.startswith("#"))
    assert samples['certfleet_certificate_failures{name="late.example.com"}'] == "3"
    assert float(samples['certfleet_certificate_not_after_seconds{name="late.example.com"}']) \
        == pytest.approx((NOW + dt.timedelta(days=4)).timestamp(), abs=1)
    target_key = f"{tmp_path}/late.example.com"
    key = f'certfleet_target_current{{name="late.example.com",target="{target_key}"}}'
    assert samples[key] == "0"  # the target was never given the files
    assert 'certfleet_run_certificates{result="failed"}' in samples
