"""Lead field values: one cleaner per field kind, with errors written for the person who typed the value.

A cleaner takes what a form, the AI or an import sent and returns the value stored in the lead
(strings trimmed, emails lower-cased, phones in E.164, numbers as int or float, dates as ISO
`YYYY-MM-DD`, multi-select as a list of options), or raises `FieldError` with a sentence.
"""
import math
import re
from datetime import date

import phonenumbers

from asthron.models.leads import FieldKind

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
TEXT_MAX = 1000
EMAIL_MAX = 254
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
TRUE_WORDS = {"true", "yes", "on", "1"}
FALSE_WORDS = {"false", "no", "off", "0"}


class FieldError(ValueError):
    """A value does not fit its field; the message says how to write it."""


def is_empty(value):
    """Say whether `value` counts as not given (None, blank text, an empty list)."""
    return value is None or (isinstance(value, str) and not value.strip()) or value == []


def clean(field, value, *, phone_region=None):
    """Return `value` cleaned for `field` (a LeadField), or raise FieldError; empty values give None."""
    if is_empty(value):
        return None
    kind = FieldKind(field.kind)
    if kind in (FieldKind.select, FieldKind.multiselect):
        return CLEANERS[kind](value, field.options or [])
    if kind == FieldKind.phone:
        return clean_phone(value, region=phone_region)
    return CLEANERS[kind](value)


def _string(value, *, limit=TEXT_MAX):
    if not isinstance(value, str):
        raise FieldError("Enter text.")
    value = value.strip()
    if "\x00" in value:
        raise FieldError("Remove the NUL character.")
    if len(value) > limit:
        raise FieldError(f"Use at most {limit} characters.")
    return value


def clean_text(value):
    """Return trimmed text of at most 1000 characters."""
    return _string(value)


def clean_email(value):
    """Return an email address in lower case."""
    value = _string(value, limit=EMAIL_MAX)
    if not EMAIL.match(value):
        raise FieldError("Enter an email address like name@example.com.")
    return value.lower()


def clean_phone(value, *, region=None):
    """Return a phone number in E.164 (+ country code and digits), read in `region` when it has no + prefix."""
    value = _string(value, limit=40)
    hint = ("Enter the number with its country code, like +44 20 7946 0958." if not region else
            f"Enter a phone number, like 020 7946 0958 or, outside {region}, with its country code (+44 ...).")
    try:
        number = phonenumbers.parse(value, region or None)
    except phonenumbers.NumberParseException:
        raise FieldError(hint) from None
    if not phonenumbers.is_valid_number(number):
        raise FieldError("This is not a valid phone number. " + hint)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def clean_number(value):
    """Return a finite number: an int when it is whole, else a float."""
    if isinstance(value, bool):
        raise FieldError("Enter a number, like 42 or 3.5.")
    if isinstance(value, str):
        try:
            value = float(value.strip().replace(",", ".")) if value.strip() else None
        except ValueError:
            raise FieldError("Enter a number, like 42 or 3.5.") from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FieldError("Enter a number, like 42 or 3.5.")
    if abs(value) > 1e15:
        raise FieldError("Enter a smaller number.")
    return int(value) if float(value).is_integer() else float(value)


def clean_select(value, options):
    """Return one of the field's options."""
    if not isinstance(value, str) or value.strip() not in options:
        raise FieldError(_choose(options))
    return value.strip()


def clean_multiselect(value, options):
    """Return a list of the field's options, without repeats, in the order given."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or any(not isinstance(v, str) or v.strip() not in options for v in value):
        raise FieldError(_choose(options, several=True))
    return list(dict.fromkeys(v.strip() for v in value))


def clean_date(value):
    """Return a date as YYYY-MM-DD."""
    if isinstance(value, date):
        return value.isoformat()[:10]
    try:
        return date.fromisoformat(_string(value, limit=10)).isoformat()
    except (FieldError, ValueError):
        raise FieldError("Enter a date as YYYY-MM-DD, like 2025-03-31.") from None


def clean_checkbox(value):
    """Return True or False."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise FieldError("Tick the box or leave it empty (true or false).")


def _choose(options, *, several=False):
    listed = ", ".join(options[:20]) or "(none configured)"
    return f"Choose {'one or more' if several else 'one'} of: {listed}."


CLEANERS = {
    FieldKind.text: clean_text, FieldKind.email: clean_email, FieldKind.phone: clean_phone,
    FieldKind.number: clean_number, FieldKind.select: clean_select, FieldKind.multiselect: clean_multiselect,
    FieldKind.date: clean_date, FieldKind.checkbox: clean_checkbox,
}


def field_json(field):
    """Return a field as the widget's lead form renders it."""
    return {"key": field.key, "label": field.label, "kind": FieldKind(field.kind).value,
            "required": bool(field.required), "help_text": field.help_text or None,
            "options": list(field.options or []), "question": field.question or None}


LEAD_FORM_CHOICES = (("off", "Only when the assistant asks for it"), ("start", "Before the first message"),
                     ("after_reply", "After the assistant's first reply"))


def check_region(value):
    """Return a region code (like GB) phone numbers can be read in, or None for empty; raise FieldError otherwise."""
    value = (value or "").strip().upper()
    if not value:
        return None
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise FieldError("Use a two-letter country code, like GB, US or DE.")
    return value
