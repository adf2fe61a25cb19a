"""The run's report by mail: through the local sendmail, or an SMTP server with STARTTLS.

Touches one child process (sendmail, an argv) or one SMTP connection. The server's TLS
certificate is verified (against ``smtp_ca_bundle`` if given, else the system's roots) and
the password, read from a file, is only ever sent after STARTTLS; it is never shown.
"""

from __future__ import annotations

import json
import smtplib
import socket
import ssl
import subprocess
from email.message import EmailMessage
from typing import Any

from .errors import CertfleetError, safe_text
from .spec import NotifySettings

MAX_LINES = 200


class MailError(CertfleetError):
    """The report could not be handed over for delivery."""


def message(settings: NotifySettings, report: dict[str, Any]) -> EmailMessage:
    """A short text for a person, with the whole report attached as JSON."""
    mail = EmailMessage()
    host = report["host"]
    mail["Subject"] = f"certfleet on {host}: {', '.join(report['events'])}: {report['summary']}"
    mail["From"] = settings.mail_from or f"certfleet@{socket.getfqdn()}"
    mail["To"] = ", ".join(settings.mail_to)
    lines = [f"certfleet ran on {host} from {report['started'][:19]} to "
             f"{report['finished'][:19]} UTC: {report['summary']}.", ""]
    for cert in report["certificates"]:
        if cert["events"]:
            lines.append(f"{cert['name']}: {', '.join(cert['events'])}"
                         + (f": {cert['error']}" if cert["error"] else ""))
            lines += [f"  {d['target']}: {d['error']}" for d in cert["deployed"] if not d["ok"]]
    for item in report["expiring"]:
        lines.append(f"{item['name']}: expires {item['not_after'][:16]} UTC and renewal has "
                     f"failed {item['failures']} time(s); last: {item['last_error']}")
    mail.set_content("\n".join(safe_text(line, 2000) for line in lines[:MAX_LINES]) + "\n")
    mail.add_attachment(json.dumps(report, indent=2).encode(), maintype="application",
                        subtype="json", filename="certfleet-report.json")
    return mail


def send(settings: NotifySettings, report: dict[str, Any]) -> None:
    mail = message(settings, report)
    if settings.mail == "sendmail":
        _sendmail(settings, mail)
    else:
        _smtp(settings, mail)


def _sendmail(settings: NotifySettings, mail: EmailMessage) -> None:
    argv = list(settings.sendmail)
    try:
        done = subprocess.run([*argv, "-t", "-oi"], input=mail.as_bytes(),
                              capture_output=True, timeout=settings.mail_timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MailError(f"mail: {safe_text(argv[0])}: {exc}") from None
    if done.returncode != 0:
        said = safe_text((done.stderr or done.stdout).decode("utf-8", "replace").strip(), 300)
        raise MailError(f"mail: {safe_text(argv[0])} exited {done.returncode}: {said}")


def _smtp(settings: NotifySettings, mail: EmailMessage) -> None:
    host, _, port = settings.smtp_server.rpartition(":")
    host = host.strip("[]")
    where = f"mail: SMTP {safe_text(settings.smtp_server)}"
    context = ssl.create_default_context(
        cafile=str(settings.smtp_ca_bundle) if settings.smtp_ca_bundle else None)
    try:
        with smtplib.SMTP(host, int(port), timeout=settings.mail_timeout) as smtp:
            smtp.ehlo()
            if settings.smtp_starttls:
                if not smtp.has_extn("starttls"):
                    raise MailError(f"{where}: the server offers no STARTTLS")
                smtp.starttls(context=context)
                smtp.ehlo()
            if settings.smtp_user:
                if not settings.smtp_starttls:
                    raise MailError(f"{where}: refusing to send a password without STARTTLS")
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            smtp.send_message(mail)
    except MailError:
        raise
    except smtplib.SMTPAuthenticationError:
        raise MailError(f"{where}: authentication refused for {settings.smtp_user}") from None
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        raise MailError(f"{where}: {safe_text(str(exc) or type(exc).__name__)}") from None
