"""Encrypt secrets the platform must store itself (OAuth tokens), with Fernet (AES-128-CBC + HMAC-SHA256).

The key is ASTHRON_ENCRYPTION_KEY (a Fernet key) when set, else derived from SECRET_KEY with HKDF,
so the demo needs no extra setting. Rotating: set the new key first in ASTHRON_ENCRYPTION_KEY and
the old one in ASTHRON_ENCRYPTION_KEY_PREVIOUS; values encrypted under the old key still decrypt
and are re-encrypted under the new one the next time they are written.
"""
import base64
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

HKDF_INFO = b"asthron stored-secrets v1"


class DecryptionError(Exception):
    """A stored value cannot be decrypted with the configured keys (the key changed, or the value was edited)."""


def _fernet(key):
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        raise DecryptionError("ASTHRON_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64-encoded bytes)") \
            from None


def _derived(secret):
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(secret.encode())
    return base64.urlsafe_b64encode(raw)


def _box(config=None):
    config = config if config is not None else current_app.config
    keys = [config.get("ASTHRON_ENCRYPTION_KEY"), config.get("ASTHRON_ENCRYPTION_KEY_PREVIOUS")]
    fernets = [_fernet(k) for k in keys if k]
    if not fernets or not config.get("ASTHRON_ENCRYPTION_KEY"):
        fernets.insert(0, Fernet(_derived(config["SECRET_KEY"])))
    return MultiFernet(fernets)


def encrypt(text, *, config=None):
    """Return `text` encrypted as an ASCII string safe to store."""
    return _box(config).encrypt(text.encode()).decode("ascii")


def decrypt(stored, *, config=None):
    """Return the text `encrypt` produced; raise DecryptionError when no configured key opens it."""
    try:
        return _box(config).decrypt(stored.encode("ascii")).decode()
    except (InvalidToken, UnicodeError, AttributeError):
        raise DecryptionError("a stored secret could not be decrypted; the encryption key may have changed") \
            from None


def encrypt_json(value, *, config=None):
    """Return a JSON-serialisable value encrypted."""
    return encrypt(json.dumps(value, sort_keys=True), config=config)


def decrypt_json(stored, *, config=None):
    """Return the value `encrypt_json` stored."""
    return json.loads(decrypt(stored, config=config))
