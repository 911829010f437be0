"""Access tokens fetched once per lifetime and shared by every task that uses a credential.

A :class:`TokenManager` keeps the token in process memory, backed by a store
shared by the processes of one machine (a ``0600`` file under the state
directory, guarded by ``flock``) or of a deployment (Redis, when
``VENDORFLOW_REDIS_URL`` is set). Fetching happens under the store's lock, so
ten processes that find the token expired make one token request, not ten.

A token is treated as expired ``leeway`` seconds before the vendor says it
expires. After a 401 the caller invalidates the token *it used*; if another
thread already replaced it, the newer token is kept (one refresh per expiry,
not one per failed request). Every token is registered with Airflow's secrets
masker the moment it is known.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from vendorflow import settings

DEFAULT_LEEWAY_SECONDS = 60.0


def oauth2_token(body: Any, *, vendor: str, endpoint: str, default_lifetime: float) -> tuple[str, float]:
    """``(access_token, expires_in seconds)`` of an OAuth2 token answer; a malformed answer is a
    :class:`~vendorflow.errors.VendorResponseError` naming the problem (never the token)."""
    from vendorflow.errors import VendorResponseError

    if not isinstance(body, Mapping):
        raise VendorResponseError(vendor, endpoint, f"expected a JSON object, got {type(body).__name__}")
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise VendorResponseError(vendor, endpoint, "the answer has no access_token")
    lifetime = body.get("expires_in")
    if lifetime is None:
        return token, float(default_lifetime)
    not_a_number = f"expires_in is {lifetime!r}, not a number of seconds"
    if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float, str)):
        raise VendorResponseError(vendor, endpoint, not_a_number)
    try:
        seconds = float(lifetime)
    except ValueError:
        raise VendorResponseError(vendor, endpoint, not_a_number) from None
    if not seconds > 0:
        raise VendorResponseError(vendor, endpoint, f"expires_in is {lifetime!r}: the token is already expired")
    return token, seconds


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float  # epoch seconds

    def valid(self, leeway: float, now: float | None = None) -> bool:
        return (now if now is not None else time.time()) < self.expires_at - leeway

    def __repr__(self) -> str:  # never print the value
        return f"Token(expires_at={self.expires_at:.0f})"


def mask(secret: str | None) -> None:
    """Register a secret with Airflow's masker (task logs, rendered fields, exceptions) and with
    :func:`vendorflow.http.redact.register_secret` (exception texts, ledger entries, dataset columns)."""
    if not secret:
        return
    from vendorflow.http.redact import register_secret

    register_secret(secret)
    try:
        from airflow.sdk.log import mask_secret
    except Exception:  # outside Airflow there is no masker to tell
        return
    mask_secret(secret)


class TokenStore(Protocol):
    def locked(self, key: str) -> contextlib.AbstractContextManager[None]: ...
    def load(self, key: str) -> Token | None: ...
    def save(self, key: str, token: Token) -> None: ...
    def discard(self, key: str, value: str) -> None: ...


class FileTokenStore:
    """Tokens as ``0600`` JSON files, one per credential, under an ``flock`` per credential."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._thread_locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        with self._guard:
            thread_lock = self._thread_locks.setdefault(key, threading.Lock())
        with thread_lock:
            fd = os.open(self.directory / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def load(self, key: str) -> Token | None:
        try:
            data = json.loads(self._path(key).read_text())
            return Token(str(data["value"]), float(data["expires_at"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, key: str, token: Token) -> None:
        path = self._path(key)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"value": token.value, "expires_at": token.expires_at}, handle)
        os.replace(tmp, path)

    def discard(self, key: str, value: str) -> None:
        current = self.load(key)
        if current is not None and current.value == value:
            with contextlib.suppress(FileNotFoundError):
                self._path(key).unlink()


class RedisTokenStore:
    """Tokens in Redis with a TTL, fetched under a Redis lock."""

    def __init__(self, url: str) -> None:
        self._redis = settings.redis_client(url)

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        with settings.redis_calls():
            lock = self._redis.lock(f"vendorflow:token-lock:{key}", timeout=120, blocking_timeout=180)
            lock.acquire()
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                lock.release()

    def load(self, key: str) -> Token | None:
        with settings.redis_calls():
            raw = self._redis.get(f"vendorflow:token:{key}")
        if raw is None:
            return None
        data = json.loads(raw)
        return Token(str(data["value"]), float(data["expires_at"]))

    def save(self, key: str, token: Token) -> None:
        ttl = max(1, int(token.expires_at - time.time()))
        payload = json.dumps({"value": token.value, "expires_at": token.expires_at})
        self._redis.set(f"vendorflow:token:{key}", payload, ex=ttl)

    def discard(self, key: str, value: str) -> None:
        current = self.load(key)
        if current is not None and current.value == value:
            self._redis.delete(f"vendorflow:token:{key}")


def default_store() -> TokenStore:
    url = settings.redis_url()
    if url:
        return RedisTokenStore(url)
    return FileTokenStore(settings.state_dir() / "tokens")


class TokenManager:
    """The current token of one credential; ``fetch`` is called only when none is valid.

    ``fetch`` returns the token value and its lifetime in seconds.
    """

    def __init__(
        self,
        key: str,
        fetch: Callable[[], tuple[str, float]],
        *,
        store: TokenStore | None = None,
        leeway: float = DEFAULT_LEEWAY_SECONDS,
    ) -> None:
        self.key = key
        self._fetch = fetch
        self._store = store or default_store()
        self.leeway = leeway
        self._memory: Token | None = None
        self._lock = threading.Lock()
        self.fetches = 0  # token requests made by this manager (for tests and logs)

    def get(self) -> str:
        token = self._memory
        if token is not None and token.valid(self.leeway):
            return token.value
        with self._lock, self._store.locked(self.key):
            token = self._store.load(self.key)
            if token is None or not token.valid(self.leeway):
                # The vendor's clock starts when it answers, which is after we asked: counting from
                # the question errs on the safe side however slowly the answer arrives.
                asked = time.time()
                value, lifetime = self._fetch()
                mask(value)
                self.fetches += 1
                token = Token(value, asked + float(lifetime))
                self._store.save(self.key, token)
            else:
                mask(token.value)
            self._memory = token
            return token.value

    def invalidate(self, value: str) -> None:
        """Forget ``value`` after the vendor refused it (a newer token, if any, is kept)."""
        with self._lock, self._store.locked(self.key):
            if self._memory is not None and self._memory.value == value:
                self._memory = None
            self._store.discard(self.key, value)
