"""Keep secrets out of anything a human or a log collector may read.

Footprints puts its access token in the query string and Algonomy takes its
client secret there, so a URL is never printed as is: every URL that reaches a
message goes through :func:`redact_url` first, and a logging filter scrubs the
lines urllib3 writes at DEBUG level.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query and form keys whose values are secrets, compared case-insensitively.
SECRET_KEYS: frozenset[str] = frozenset(
    {
        "access_token",
        "refresh_token",
        "token",
        "client_secret",
        "secret",
        "password",
        "user_password",
        "pin",
        "api_key",
        "apikey",
        "auth-token",
        "authorization",
    }
)
MASK = "***"

_QUERY_SECRET = re.compile(
    r"(?i)(?P<key>(?:" + "|".join(re.escape(k) for k in sorted(SECRET_KEYS)) + r"))=(?P<value>[^&\s\"'#]+)"
)


def is_secret_key(key: str) -> bool:
    return key.lower() in SECRET_KEYS


def redact_params(params: Mapping[str, object] | Iterable[tuple[str, object]] | None) -> list[tuple[str, str]]:
    """The (key, value) pairs of a query, with secret values masked."""
    if params is None:
        return []
    items = params.items() if isinstance(params, Mapping) else params
    return [(str(k), MASK if is_secret_key(str(k)) else str(v)) for k, v in items]


def redact_url(url: str) -> str:
    """The URL with user info and secret query values masked."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = urlencode(redact_params(parse_qsl(parts.query, keep_blank_values=True)), safe="[],*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


# Every secret this process holds: client secrets, API keys, and each access token the moment it is
# fetched, loaded from a shared cache or refreshed, of any vendor. Kept for the life of the process
# (an expired token is still a credential in an attacker's notes), longest first so that a secret
# holding another is masked whole.
_known: set[str] = set()
_known_sorted: tuple[str, ...] = ()
_known_lock = threading.Lock()
MIN_SECRET_LENGTH = 4


def register_secret(secret: str | None) -> None:
    """Remember ``secret`` so that :func:`redact_text` masks it wherever it turns up."""
    global _known_sorted
    if not secret or len(secret) < MIN_SECRET_LENGTH or secret in _known:
        return
    with _known_lock:
        _known.add(secret)
        _known_sorted = tuple(sorted(_known, key=len, reverse=True))


def known_secrets() -> tuple[str, ...]:
    return _known_sorted


def forget_secrets(keep: Iterable[str] = ()) -> None:
    """Forget every registered secret but ``keep`` (tests: one test's tokens must not mask another's text)."""
    global _known_sorted
    with _known_lock:
        _known.intersection_update(keep)
        _known_sorted = tuple(sorted(_known, key=len, reverse=True))


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """The text with ``key=value`` secrets, every registered secret and the given ones masked."""
    text = _QUERY_SECRET.sub(lambda m: f"{m.group('key')}={MASK}", text)
    for secret in (*secrets, *_known_sorted):
        if secret and len(secret) >= MIN_SECRET_LENGTH and secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_value(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings) with every secret masked in its strings and keys."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {redact_value(k) if isinstance(k, str) else k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value


class RedactingFilter(logging.Filter):
    """Rewrites a record's message so query-string secrets and registered secrets never reach a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's problem, not a leak
            return True
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_installed = False


def install_log_redaction() -> None:
    """Scrub the loggers that print request URLs (urllib3 logs them at DEBUG)."""
    global _installed
    if _installed:
        return
    for name in ("urllib3.connectionpool", "urllib3.util.retry", "requests"):
        logging.getLogger(name).addFilter(RedactingFilter())
    _installed = True
