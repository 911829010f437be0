"""Pseudonymising personal data: keyed HMAC-SHA256 of the normalised value."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Literal

_NON_DIGITS = re.compile(r"\D+")


def normalise(value: str, kind: Literal["email", "phone"]) -> str | None:
    """Lower-cased, trimmed e-mail; a phone number's digits. ``None`` when nothing is left."""
    if kind == "email":
        text = value.strip().lower()
    else:
        text = _NON_DIGITS.sub("", value)
    return text or None


def pseudonymise(value: str | None, kind: Literal["email", "phone"], key: bytes) -> str | None:
    """Hex HMAC-SHA256 of the normalised value under ``key``; ``None`` stays ``None``."""
    if value is None:
        return None
    text = normalise(str(value), kind)
    if text is None:
        return None
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()
