"""The HTTP client every vendor hook uses: one session, timeouts, the shared
rate limit, the retry policy, token refresh on 401 and secret-free messages.

It knows nothing about Airflow, so each piece is tested with a fake server.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
import tenacity

from vendorflow import __version__
from vendorflow.errors import VendorAPIError, VendorResponseError
from vendorflow.http.auth import RefreshableAuth
from vendorflow.http.deadline import DeadlineAdapter, deadline
from vendorflow.http.ratelimit import RateLimiter
from vendorflow.http.redact import install_log_redaction, redact_params, redact_text
from vendorflow.http.retry import RetryableError, RetryPolicy, parse_retry_after
from vendorflow.http.tokens import mask

log = logging.getLogger(__name__)

Params = Mapping[str, Any] | Sequence[tuple[str, Any]] | None
DEFAULT_TIMEOUT = (10.0, 60.0)  # connect, read


# --- responses ----------------------------------------------------------------------


def vendor_message(response: requests.Response, secrets: Sequence[str] = ()) -> str:
    """The vendor's own explanation of an error answer, as short text without secrets."""
    text = response.text or ""
    message = ""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        parts = []
        for key in ("name", "error", "message", "messageCode", "error_description", "detail", "title"):
            value = body.get(key)
            if isinstance(value, str) and value and value not in parts:
                parts.append(value)
        meta = body.get("meta")
        if isinstance(meta, Mapping):  # Allyy's envelope
            for error in meta.get("errors") or []:
                if isinstance(error, Mapping):
                    parts.append(": ".join(str(error[k]) for k in ("code", "message") if error.get(k)))
            for problem in meta.get("validation") or []:
                if isinstance(problem, Mapping):
                    parts.append(": ".join(str(problem[k]) for k in ("property", "message") if problem.get(k)))
        message = "; ".join(p for p in parts if p)
    if not message:
        message = " ".join(text.split())[:300] or response.reason or "no message"
    return redact_text(message, secrets)


def decode_json(response: requests.Response, vendor: str, endpoint: str) -> Any:
    """The JSON body, or a :class:`VendorResponseError` that says what came instead.

    The body is sniffed rather than trusting ``Content-Type``: Allyy labels JSON
    ``text/plain``, and a proxy's HTML error page may claim to be JSON.
    """
    raw = response.content
    head = raw[:200].lstrip()
    content_type = response.headers.get("Content-Type", "unknown")
    if not head:
        raise VendorResponseError(vendor, endpoint, f"empty body where JSON was expected (HTTP {response.status_code})")
    if head.startswith(b"<"):
        lowered = head[:100].lower()
        kind = "HTML" if (b"<html" in lowered or b"<!doctype" in lowered) else "XML"
        snippet = redact_text(" ".join(raw[:120].decode("utf-8", "replace").split()))
        raise VendorResponseError(
            vendor, endpoint, f"answered {kind} instead of JSON (Content-Type {content_type}): {snippet!r}"
        )
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise VendorResponseError(vendor, endpoint, _json_problem(raw, exc)) from None


def _json_problem(raw: bytes, error: ValueError) -> str:
    """Say whether a body that is not JSON was cut short (a prefix of a document) or is just malformed."""
    text = raw.decode("utf-8", "replace").rstrip()
    position = getattr(error, "pos", None)
    message = getattr(error, "msg", str(error))
    cut_short = (
        isinstance(error, UnicodeDecodeError)
        or message.startswith("Unterminated string")
        or (position is not None and position >= len(text) - 1)
    )
    kind = "truncated" if cut_short else "malformed"
    where = f" at character {position}" if position is not None else ""
    return f"{kind} JSON body ({len(raw)} bytes; {message}{where})"


# --- the client ---------------------------------------------------------------------


class VendorClient:
    """Requests to one vendor through one session, rate-limited, retried and refreshed."""

    def __init__(
        self,
        *,
        vendor: str,
        base_url: str,
        auth: requests.auth.AuthBase | None = None,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        pool_size: int = 16,
        secrets: Sequence[str] = (),
        request_deadline: float | None = None,
    ) -> None:
        install_log_redaction()
        self.vendor = vendor
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        if isinstance(auth, RefreshableAuth):
            auth.bind(self)  # its token requests go through this client
        self.limiter = limiter
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        # The whole request (connect, headers, body) ends by then, however the vendor trickles it.
        self.request_deadline = request_deadline or (timeout[0] + timeout[1])
        self.secrets = tuple(s for s in secrets if s)
        for secret in self.secrets:
            mask(secret)
        self.session = requests.Session()
        adapter = DeadlineAdapter(pool_connections=4, pool_maxsize=max(pool_size, 4), max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"User-Agent": f"vendorflow/{__version__} (+airflow)", **(headers or {})})
        self._counts = {"requests": 0, "retries": 0}
        self._counts_lock = threading.Lock()

    @property
    def requests_sent(self) -> int:
        """Requests put on the wire by this client (retries included); thread-safe."""
        return self._counts["requests"]

    @property
    def retries(self) -> int:
        return self._counts["retries"]

    def _count(self, what: str) -> None:
        with self._counts_lock:
            self._counts[what] += 1

    # Endpoint text used in every message: method, path and query, secrets masked.
    def describe(self, method: str, path: str, params: Params = None) -> str:
        query = urlencode(redact_params(params), safe="[],*:")
        path = "/" + path.lstrip("/") if not path.startswith("http") else urlsplit(path).path
        return f"{method.upper()} {path}{'?' + query if query else ''}"

    def url(self, path: str, base_url: str | None = None) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{(base_url or self.base_url).rstrip('/')}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Params = None,
        base_url: str | None = None,
        auth: requests.auth.AuthBase | None | bool = True,
        ok: Sequence[int] = (),
        retry: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one logical request; returns a 2xx response (or one whose status is in ``ok``).

        ``auth=True`` uses the client's auth, ``None``/``False`` sends none, an
        ``AuthBase`` replaces it for this call (a token endpoint's Basic auth).
        ``retry`` replaces the client's policy for this call: a request that is
        not idempotent (an upload) may need to check what arrived before it is
        sent again.
        """
        endpoint = self.describe(method, path, params)
        url = self.url(path, base_url)
        chosen_auth = self.auth if auth is True else (auth or None)
        kwargs.setdefault("timeout", self.timeout)
        policy = retry or self.retry

        def before_sleep(state: tenacity.RetryCallState) -> None:
            self._count("retries")
            error = state.outcome.exception() if state.outcome else None
            wait = state.next_action.sleep if state.next_action else 0
            log.warning(
                "%s %s: %s; retry %d of %d in %.1f s",
                self.vendor,
                endpoint,
                error,
                state.attempt_number,
                policy.attempts - 1,
                wait,
            )

        try:
            for attempt in policy.retrying(before_sleep):
                with attempt:
                    return self._send(method, url, endpoint, params, chosen_auth, ok, kwargs)
        except RetryableError as exc:
            # VendorAPIError says "HTTP <status>" itself: the detail alone, not "HTTP 500: HTTP 500: ...".
            raise VendorAPIError(
                self.vendor, endpoint, exc.status, f"{exc.detail} (gave up after {policy.attempts} attempts)"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(
        self,
        method: str,
        url: str,
        endpoint: str,
        params: Params,
        auth: requests.auth.AuthBase | None,
        ok: Sequence[int],
        kwargs: dict[str, Any],
    ) -> requests.Response:
        refreshed = False
        while True:
            if self.limiter is not None:
                self.limiter.acquire()
            started = time.monotonic()
            host = urlsplit(url).netloc.rpartition("@")[2]
            try:
                self._count("requests")
                with deadline(self.request_deadline) as watch:
                    try:
                        response = self.session.request(method, url, params=params, auth=auth, **kwargs)
                    finally:
                        expired = watch is not None and watch.expired
            except requests.RequestException as exc:
                # requests' messages quote the full URL, query string and all: never pass them on.
                if expired:
                    kind = (
                        f"no complete answer from {host} within the {self.request_deadline:g} s deadline "
                        f"(extra request_deadline)"
                    )
                elif isinstance(exc, requests.exceptions.SSLError):
                    kind = f"TLS handshake with {host} failed; is the scheme right (https:// or http://)?"
                elif isinstance(exc, requests.Timeout):
                    kind = f"{host} timed out"
                elif isinstance(exc, requests.ConnectionError):
                    kind = f"connection to {host} failed or dropped"
                else:  # ChunkedEncodingError, ContentDecodingError, ...
                    kind = f"answer from {host} cut short"
                raise RetryableError(f"{kind} ({exc.__class__.__name__})") from None
            log.debug("%s %s -> %s in %.3f s", self.vendor, endpoint, response.status_code, time.monotonic() - started)

            status = response.status_code
            if status == 401 and isinstance(auth, RefreshableAuth) and not refreshed:
                refreshed = True
                auth.refresh(response.request)
                continue
            if status == 429 or status >= 500:
                message = vendor_message(response, self.secrets)
                raise RetryableError(
                    f"HTTP {status}: {message}",
                    detail=message,
                    status=status,
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                )
            if status >= 400 and status not in ok:
                raise VendorAPIError(self.vendor, endpoint, status, vendor_message(response, self.secrets))
            return response

    def get_json(self, path: str, *, params: Params = None, **kwargs: Any) -> tuple[Any, requests.Response]:
        """GET ``path`` and decode its JSON body; returns ``(body, response)`` so headers stay reachable."""
        response = self.request("GET", path, params=params, **kwargs)
        return decode_json(response, self.vendor, self.describe("GET", path, params)), response

    def get_object(self, path: str, *, params: Params = None, **kwargs: Any) -> dict[str, Any]:
        """GET ``path`` whose answer must be one JSON object (a single resource)."""
        body, _ = self.get_json(path, params=params, **kwargs)
        if not isinstance(body, dict):
            raise VendorResponseError(
                self.vendor, self.describe("GET", path, params), f"expected a JSON object, got {type(body).__name__}"
            )
        return body

    def close(self) -> None:
        self.session.close()
