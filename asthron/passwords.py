"""The password policy: length only (12 to at least 64), and no common passwords (NIST 800-63B)."""
import functools
import os

MIN_LENGTH = 12
MAX_LENGTH = 128


class PasswordPolicyError(ValueError):
    """The password breaks the policy; the message tells the user why."""


@functools.lru_cache(maxsize=1)
def common_passwords():
    """Return the set of refused common passwords (lower-cased)."""
    path = os.path.join(os.path.dirname(__file__), "common_passwords.txt")
    with open(path, encoding="utf-8") as fh:
        return frozenset(line.strip().lower() for line in fh if line.strip() and not line.startswith("#"))


def check_password_policy(password):
    """Raise PasswordPolicyError unless the password meets the policy."""
    if password is None or len(password) < MIN_LENGTH:
        raise PasswordPolicyError(f"Use at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        raise PasswordPolicyError(f"Use at most {MAX_LENGTH} characters.")
    if password.lower() in common_passwords() or len(set(password)) < 4:
        raise PasswordPolicyError("That password is too common; choose another.")
