"""Plugin settings hold secrets as `{"$env": "VAR"}` references, resolved from the environment when used.

A literal value under a secret-looking key (api_key, password, token, ...) is refused, so a secret
never sits in the database, a config file or a log line. Error messages name the setting and the
variable, never a value.
"""
import os
import re
from collections.abc import Mapping

ENV_KEY = "$env"
SECRET_WORDS = {"secret", "password", "passwd", "passphrase", "token", "apikey", "credential", "private"}
# A trailing word that makes a secret-sounding name a locator or label instead (token_url, client_id).
NOT_SECRET_SUFFIXES = {"url", "uri", "endpoint", "id", "name", "type", "env", "header", "ttl", "expiry"}


class SecretError(ValueError):
    """A setting's secret is missing from the environment or was given as a literal."""


def is_secret_name(name):
    """Say whether a setting name is one that must hold an `$env` reference, not a value."""
    # Singular words, so api_keys and client_secrets count like api_key and client_secret.
    words = [w[:-1] if len(w) > 3 and w.endswith("s") else w for w in re.split(r"[^a-z0-9]+", str(name).lower()) if w]
    if not words or "public" in words or words[-1] in NOT_SECRET_SUFFIXES:
        return False
    return bool(SECRET_WORDS.intersection(words)) or words[-1] == "key"


def is_reference(value):
    """Say whether `value` is an `{"$env": "VAR"}` reference."""
    return isinstance(value, Mapping) and set(value) == {ENV_KEY}


def check_no_literal_secrets(settings, *, path="", secret=False):
    """Raise SecretError if any secret-looking setting holds a literal value instead of a reference."""
    for key, value in _items(settings):
        where = _join(path, key)
        inside_secret = secret or is_secret_name(key)
        if is_reference(value):
            _variable(value, where)
        elif isinstance(value, (Mapping, list, tuple)):
            check_no_literal_secrets(value, path=where, secret=inside_secret)
        elif inside_secret and value not in (None, ""):
            raise SecretError(f'setting {where!r} holds a literal secret; write {{"$env": "VARIABLE"}} '
                              "and put the value in that environment variable")


def resolve(settings, *, environ=None):
    """Return a copy of `settings` with every `$env` reference replaced by its environment value."""
    check_no_literal_secrets(settings)
    return _resolve(settings, os.environ if environ is None else environ, "")


def _resolve(value, environ, where):
    if is_reference(value):
        name = _variable(value, where)
        if name not in environ:
            raise SecretError(f"setting {where!r} refers to environment variable {name}, which is not set")
        return environ[name]
    if isinstance(value, Mapping):
        return {k: _resolve(v, environ, _join(where, k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_resolve(v, environ, _join(where, f"[{i}]")) for i, v in enumerate(value)]
    return value


def _variable(reference, where):
    name = reference[ENV_KEY]
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise SecretError(f"setting {where!r} has an $env reference that is not a variable name")
    return name


def _items(settings):
    if isinstance(settings, Mapping):
        return settings.items()
    if isinstance(settings, (list, tuple)):
        return ((f"[{i}]", v) for i, v in enumerate(settings))
    return ()


def _join(path, key):
    key = str(key)
    if not path or key.startswith("["):
        return path + key
    return f"{path}.{key}"
