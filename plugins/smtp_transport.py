"""The SMTP email transport: any mail server or relay, over STARTTLS or implicit TLS, with authentication.

A folder plugin (loaded by path from plugins/, registered as `smtp_transport`) that registers the
email transport `smtp`. Settings (a workspace's email settings, or ASTHRON_EMAIL_TRANSPORT_SETTINGS):

    {"host": "smtp.example.com", "port": 587, "security": "starttls",
     "username": "mailer", "password": {"$env": "SMTP_PASSWORD"}, "timeout": 30,
     "ca_file": "/etc/ssl/private-ca.pem"}

`security` is "starttls" (default, port 587), "tls" (implicit TLS, port 465) or "none" (port 25,
for a relay on the same host or network; no authentication then, since it would send the password
in clear). Certificates are always verified against the system's CAs, or against `ca_file` when
given. Replies 4xx and connection problems are temporary (the notification is retried); 5xx are
permanent. Each message keeps the Message-ID the core gives it, so a retried send is recognisable.
Errors name the SMTP code and the server's reply with the password scrubbed out, never settings.

The mail provider behind the server is a sub-processor the operator declares under
Platform -> Sub-processors: this plugin cannot know who runs the server it is pointed at.
"""
import base64
import smtplib
import ssl
from email import policy
from email.message import EmailMessage as MimeMessage
from email.utils import formatdate, make_msgid, parseaddr

from asthron.hookspecs import hookimpl
from asthron.providers.email import EmailTransport, SendResult

__version__ = "1.0.0"

SECURITY_PORTS = {"starttls": 587, "tls": 465, "none": 25}
RESERVED_HEADERS = {"from", "to", "cc", "bcc", "subject", "date", "reply-to"}
MAX_REPLY = 200


class _Failure(Exception):
    """A send failed: the reason (safe to store) and whether retrying can help."""

    def __init__(self, error, *, permanent):
        super().__init__(error)
        self.error, self.permanent = error, permanent


class SMTPTransport(EmailTransport):
    """Sends through an SMTP server with smtplib."""

    name = "smtp"
    label = "SMTP server"

    def check_settings(self, settings):
        host = settings.get("host")
        if not isinstance(host, str) or not host.strip():
            raise ValueError('SMTP needs "host", the mail server\'s name.')
        security = settings.get("security", "starttls")
        if security not in SECURITY_PORTS:
            raise ValueError('"security" is "starttls", "tls" or "none".')
        port = settings.get("port", SECURITY_PORTS[security])
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ValueError('"port" is a number from 1 to 65535.')
        timeout = settings.get("timeout", 30)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= 120:
            raise ValueError('"timeout" is a number of seconds from 1 to 120.')
        if settings.get("username") and security == "none":
            raise ValueError('Authentication needs "security": "starttls" or "tls"; it would send the password '
                             "in clear.")
        if settings.get("username") and not settings.get("password"):
            raise ValueError('A "username" needs a "password": {"$env": "VARIABLE"}.')
        unknown = sorted(set(settings) - {"host", "port", "security", "username", "password", "timeout", "ca_file",
                                          "local_hostname"})
        if unknown:
            raise ValueError(f"Unknown SMTP setting {unknown[0]!r}.")

    def send(self, *, settings, message):
        try:
            self.check_settings(settings)
        except ValueError as exc:
            return SendResult(accepted=False, error=str(exc), permanent=True)
        mime = build_mime(message)
        envelope_from = parseaddr(mime["From"])[1]
        try:
            with _connect(settings) as smtp:
                if settings.get("username"):
                    smtp.login(settings["username"], settings["password"])
                smtp.send_message(mime, from_addr=envelope_from, to_addrs=list(message.to))
        except _Failure as exc:
            return SendResult(accepted=False, error=_scrub(exc.error, settings), permanent=exc.permanent)
        except Exception as exc:
            failure = classify(exc)
            return SendResult(accepted=False, error=_scrub(failure.error, settings), permanent=failure.permanent)
        return SendResult(accepted=True, message_id=mime["Message-ID"])


def build_mime(message):
    """Return the MIME message: text, an HTML alternative, attachments, and the given Message-ID."""
    mime = MimeMessage(policy=policy.SMTP)
    mime["Subject"] = message.subject
    mime["From"] = message.from_addr
    mime["To"] = ", ".join(message.to)
    if message.reply_to:
        mime["Reply-To"] = message.reply_to
    mime["Date"] = formatdate(usegmt=True)
    for key, value in message.headers.items():
        if key.lower() not in RESERVED_HEADERS:
            mime[key] = value  # the email package refuses line breaks in a header value
    if "Message-ID" not in mime:
        mime["Message-ID"] = make_msgid(domain=parseaddr(message.from_addr)[1].rpartition("@")[2] or None)
    mime.set_content(message.text)
    if message.html:
        mime.add_alternative(message.html, subtype="html")
    for item in message.attachments:
        kind, *params = [p.strip() for p in item.content_type.split(";")]
        maintype, subtype = kind.split("/", 1)
        mime.add_attachment(item.data, maintype=maintype, subtype=subtype, filename=item.filename,
                            params=dict(p.split("=", 1) for p in params if "=" in p))
    return mime


def _connect(settings):
    security = settings.get("security", "starttls")
    host, port = settings["host"], settings.get("port", SECURITY_PORTS[security])
    timeout = settings.get("timeout", 30)
    local = settings.get("local_hostname")
    if security == "none":
        return smtplib.SMTP(host, port, timeout=timeout, local_hostname=local)
    context = ssl.create_default_context(cafile=settings.get("ca_file") or None)
    if security == "tls":
        return smtplib.SMTP_SSL(host, port, timeout=timeout, context=context, local_hostname=local)
    smtp = smtplib.SMTP(host, port, timeout=timeout, local_hostname=local)
    try:
        smtp.ehlo()
        if not smtp.has_extn("starttls"):
            raise _Failure("the server does not offer STARTTLS; set \"security\" to match it", permanent=True)
        smtp.starttls(context=context)
        smtp.ehlo()
    except BaseException:
        smtp.close()
        raise
    return smtp


def classify(exc):
    """Turn an smtplib or network exception into a failure: 4xx and network temporary, 5xx permanent."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _reply in exc.recipients.values()]
        reply = next(iter(exc.recipients.values()), (0, b""))
        return _Failure(f"recipient refused: {_reply(*reply)}", permanent=all(500 <= c < 600 for c in codes))
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return _Failure(f"the server does not support that: {exc}", permanent=True)
    if isinstance(exc, smtplib.SMTPResponseException):
        stage = {smtplib.SMTPAuthenticationError: "authentication failed", smtplib.SMTPSenderRefused: "sender refused",
                 smtplib.SMTPDataError: "message refused", smtplib.SMTPHeloError: "greeting refused",
                 smtplib.SMTPConnectError: "connection refused"}.get(type(exc), "server error")
        return _Failure(f"{stage}: {_reply(exc.smtp_code, exc.smtp_error)}", permanent=500 <= exc.smtp_code < 600)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _Failure(f"the server's certificate was not trusted ({exc.verify_message})", permanent=False)
    if isinstance(exc, (smtplib.SMTPServerDisconnected, TimeoutError)):
        return _Failure(f"the server disconnected or timed out ({type(exc).__name__})", permanent=False)
    if isinstance(exc, OSError):
        return _Failure(f"could not reach the server ({type(exc).__name__})", permanent=False)
    if isinstance(exc, smtplib.SMTPException):
        return _Failure(f"SMTP error ({type(exc).__name__})", permanent=False)
    if isinstance(exc, ValueError):  # a header the email package refused
        return _Failure("the message could not be encoded", permanent=True)
    return _Failure(f"unexpected {type(exc).__name__}", permanent=False)


def _reply(code, text):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join(str(text or "").split())
    return f"{code} {text[:MAX_REPLY]}".strip()


def _scrub(text, settings):
    """Remove the password, plain or base64-encoded as AUTH sends it, from a message."""
    password = settings.get("password")
    if not password:
        return text
    username = str(settings.get("username") or "")
    forms = {str(password), base64.b64encode(str(password).encode()).decode(),
             base64.b64encode(f"\0{username}\0{password}".encode()).decode()}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "[redacted]")
    return text


@hookimpl
def register_email_transports(register):
    register(SMTPTransport())
