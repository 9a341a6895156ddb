"""A real SMTP server for tests (aiosmtpd, in-process): plain, STARTTLS or implicit TLS, with AUTH.

Certificates are made at test time with `cryptography`: a private CA and a server certificate for
localhost and 127.0.0.1, so the client verifies a real chain by trusting the CA file.
"""
import socket
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from ipaddress import ip_address

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port():
    """Return a TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    """A message the server accepted: envelope and parsed content."""

    mail_from: str
    rcpt_tos: list
    message: object
    raw: bytes
    login: str | None = None


@dataclass
class Handler:
    """Records accepted mail; answers RCPT or DATA with a chosen reply when told to."""

    received: list = field(default_factory=list)
    rcpt_reply: str | None = None
    data_reply: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      message_from_bytes(envelope.content, policy=policy.default),
                                      envelope.content, login))
        return "250 Message accepted for delivery"


class SMTPServer:
    """One aiosmtpd server on 127.0.0.1; `start()` may come after a client already failed to reach it."""

    def __init__(self, *, security="none", users=None, certificates=None, exclude_mechanisms=()):
        self.port = free_port()
        self.handler = Handler()
        self.security, self.users, self.certificates = security, dict(users or {}), certificates
        self.exclude_mechanisms = list(exclude_mechanisms)
        self.mechanisms_used = []
        self.controller = None

    @property
    def received(self):
        return self.handler.received

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        self.mechanisms_used.append(mechanism)
        ok = isinstance(auth_data, LoginPassword) and \
            self.users.get(auth_data.login.decode()) == auth_data.password.decode()
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    def _server_context(self):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certificates.cert_file, self.certificates.key_file)
        return context

    def start(self):
        """Start listening (on the port chosen at creation)."""
        kwargs = {"authenticator": self._authenticate, "auth_exclude_mechanism": self.exclude_mechanisms}
        if self.security == "starttls":
            kwargs.update(tls_context=self._server_context(), require_starttls=True)
        elif self.security == "tls":
            # aiosmtpd counts only STARTTLS as TLS for AUTH; an implicit-TLS connection is encrypted throughout.
            kwargs.update(ssl_context=self._server_context(), auth_require_tls=False)
        else:
            kwargs.update(auth_require_tls=False)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()
        return self

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def settings(self, **extra):
        """Return transport settings pointing at this server."""
        values = {"host": "localhost" if self.security != "none" else "127.0.0.1", "port": self.port,
                  "security": self.security, "timeout": 5}
        if self.certificates:
            values["ca_file"] = self.certificates.ca_file
        return {**values, **extra}


@dataclass(frozen=True)
class Certificates:
    ca_file: str
    cert_file: str
    key_file: str


def make_certificates(folder, *, names=("localhost",), addresses=("127.0.0.1",)):
    """Write a private CA and a server certificate signed by it into `folder`; return their paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def name(common):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("Asthron test CA")).issuer_name(name("Asthron test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ip_address(a)) for a in addresses]
    cert = (x509.CertificateBuilder().subject_name(name(names[0])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = Certificates(str(folder / "ca.pem"), str(folder / "server.pem"), str(folder / "server.key"))
    with open(paths.ca_file, "wb") as fh:
        fh.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths.cert_file, "wb") as fh:
        fh.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths.key_file, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    return paths


@pytest.fixture(scope="session")
def certificates(tmp_path_factory):
    """A private CA and a localhost server certificate, made once per test run."""
    return make_certificates(tmp_path_factory.mktemp("smtp-certs"))


@pytest.fixture
def smtp_server():
    """Make SMTP servers for one test (`smtp_server(security=..., users=...)`); all stop afterwards."""
    made = []

    def make(**kwargs):
        server = SMTPServer(**kwargs)
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def smtp_plugin():
    """Load plugins/smtp_transport.py by path, as the app does; return its module; unregister it after."""
    import sys

    from asthron import plugins
    from tests.fake_openai import PLUGINS_DIR

    assert plugins.load_folder(str(PLUGINS_DIR), allow=plugins.allowed_names("smtp_transport")) == ["smtp_transport"]
    yield plugins.pm.get_plugin("smtp_transport")
    plugins.unregister("smtp_transport")
    sys.modules.pop(f"{plugins.FOLDER_PACKAGE}.smtp_transport", None)
