"""What every vendor hook shares: a lazily read connection, typed extras, one
client (session, limiter, retry) per hook, and a ``test_connection`` that never raises.

The connection forms (labels, hidden fields, typed extras) are declared in
:mod:`vendorflow.provider`, not in the hooks."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any, ClassVar

from airflow.sdk import BaseHook

from vendorflow.errors import ConfigError
from vendorflow.http.client import DEFAULT_TIMEOUT, VendorClient
from vendorflow.http.retry import RetryPolicy

class VendorHook(BaseHook):
    """Base of the five vendor hooks; subclasses set the class attributes and build the client."""

    conn_name_attr: ClassVar[str]
    default_conn_name: ClassVar[str]
    conn_type: ClassVar[str]
    hook_name: ClassVar[str]
    vendor_name: ClassVar[str]
    default_host: ClassVar[str | None] = None
    default_requests_per_second: ClassVar[float | None] = None
    default_concurrency: ClassVar[int] = 4

    def __init__(self, conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id or self.default_conn_name

    # -- connection --------------------------------------------------------------------

    @cached_property
    def connection(self) -> Any:
        return self.get_connection(self.conn_id)

    @cached_property
    def extras(self) -> dict[str, Any]:
        extra = self.connection.extra
        if not extra:
            return {}
        try:
            value = json.loads(extra) if isinstance(extra, str) else dict(extra)
        except ValueError as exc:
            raise ConfigError(f"Connection {self.conn_id!r}: extra is not valid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise ConfigError(f"Connection {self.conn_id!r}: extra must be a JSON object")
        # Older UIs store form fields as ``extra__<type>__<name>``; both spellings mean the same.
        prefix = f"extra__{self.conn_type}__"
        return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in value.items()}

    def config_error(self, problem: str) -> ConfigError:
        return ConfigError(f"Connection {self.conn_id!r} ({self.vendor_name}): {problem}")

    def extra_str(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.extras.get(key)
        if value in (None, ""):
            if required:
                raise self.config_error(f"extra {key!r} is required")
            return default
        if not isinstance(value, (str, int)):
            raise self.config_error(f"extra {key!r} must be a string")
        return str(value)

    def extra_float(self, key: str, default: float | None = None, *, minimum: float = 0.0) -> float | None:
        value = self.extras.get(key)
        if value in (None, ""):
            return default
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self.config_error(f"extra {key!r} must be a number, not {value!r}") from None
        if not number > minimum:
            raise self.config_error(f"extra {key!r} must be greater than {minimum:g}, not {value!r}")
        return number

    def extra_int(self, key: str, default: int, *, minimum: int = 1) -> int:
        value = self.extras.get(key)
        if value in (None, ""):
            return default
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise self.config_error(f"extra {key!r} must be a whole number, not {value!r}") from None
        if number < minimum:
            raise self.config_error(f"extra {key!r} must be at least {minimum}, not {value!r}")
        return number

    def base_url(self, host: str | None = None, *, default: str | None = None) -> str:
        """The connection's host as a base URL (scheme, host, port and any path prefix)."""
        host = (host if host is not None else self.connection.host) or default or self.default_host
        if not host:
            raise self.config_error("host is required: the vendor API's base URL, e.g. https://api.example.com")
        host = host.strip().rstrip("/")
        if "://" not in host:
            scheme = self.connection.schema or "https"
            port = f":{self.connection.port}" if self.connection.port else ""
            host = f"{scheme}://{host}{port}"
        return host

    def secret(self, field: str, what: str) -> str:
        value = getattr(self.connection, field, None)
        if not value:
            raise self.config_error(f"the {field} field is empty: it must hold the {what}")
        return str(value)

    # -- HTTP --------------------------------------------------------------------------

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.extra_int("retries", 6),
            initial=self.extra_float("backoff_seconds", 1.0) or 1.0,
            maximum=self.extra_float("max_backoff_seconds", 60.0) or 60.0,
        )

    def timeout(self) -> tuple[float, float]:
        return (
            self.extra_float("connect_timeout", DEFAULT_TIMEOUT[0]) or DEFAULT_TIMEOUT[0],
            self.extra_float("timeout", DEFAULT_TIMEOUT[1]) or DEFAULT_TIMEOUT[1],
        )

    @property
    def concurrency(self) -> int:
        return self.extra_int("concurrency", self.default_concurrency)

    @cached_property
    def client(self) -> VendorClient:
        return self.build_client()

    def build_client(self) -> VendorClient:
        raise NotImplementedError

    def get_conn(self) -> VendorClient:
        return self.client

    # -- connection test ---------------------------------------------------------------

    def ping(self) -> str:
        """One cheap authenticated call; returns what to show on success."""
        raise NotImplementedError

    def test_connection(self) -> tuple[bool, str]:
        try:
            return True, self.ping()
        except Exception as exc:  # the UI wants a message, not a traceback
            return False, f"{type(exc).__name__}: {exc}"
