"""Stored secrets (calendar OAuth tokens) are encrypted: a configured key, or one derived from SECRET_KEY; rotation."""
import pytest
from cryptography.fernet import Fernet

from asthron.services import encryption

BASE = {"SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789"}


def test_a_value_round_trips_and_is_not_stored_in_the_clear():
    stored = encryption.encrypt_json({"refresh_token": "1//0g-secret"}, config=BASE)
    assert "1//0g-secret" not in stored
    assert encryption.decrypt_json(stored, config=BASE) == {"refresh_token": "1//0g-secret"}


def test_the_configured_key_is_used_instead_of_the_derived_one():
    key = Fernet.generate_key().decode()
    stored = encryption.encrypt("token", config={**BASE, "ASTHRON_ENCRYPTION_KEY": key})
    assert Fernet(key.encode()).decrypt(stored.encode()) == b"token"
    with pytest.raises(encryption.DecryptionError):
        encryption.decrypt(stored, config=BASE)


def test_a_new_secret_key_cannot_open_values_of_the_old_one():
    stored = encryption.encrypt("token", config=BASE)
    with pytest.raises(encryption.DecryptionError):
        encryption.decrypt(stored, config={"SECRET_KEY": "another-secret-key-that-is-long-enough-987654"})


def test_rotation_keeps_old_values_readable():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    stored = encryption.encrypt("token", config={**BASE, "ASTHRON_ENCRYPTION_KEY": old})
    rotated = {**BASE, "ASTHRON_ENCRYPTION_KEY": new, "ASTHRON_ENCRYPTION_KEY_PREVIOUS": old}
    assert encryption.decrypt(stored, config=rotated) == "token"
    assert Fernet(new.encode()).decrypt(encryption.encrypt("again", config=rotated).encode()) == b"again"


def test_a_malformed_key_is_a_clear_error():
    with pytest.raises(encryption.DecryptionError, match="not a Fernet key"):
        encryption.encrypt("token", config={**BASE, "ASTHRON_ENCRYPTION_KEY": "too-short"})
