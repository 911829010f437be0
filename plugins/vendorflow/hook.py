"""What every vendor hook shares: a lazily read connection, typed extras, one
client (session, limiter, retry) per hook, and a ``test_connection`` that never raises.

The connection forms (labels, hidden fields, typed extras) are declared in
:mod:`vendorflow.vendors.<vendor>.form` (registered by :mod:`vendorflow.provider`); an extra's
default is read from there (:meth:`VendorHook.form_default`), never restated in a hook."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from airflow.sdk import BaseHook

from vendorflow.errors import ConfigError
from vendorflow.http.client import DEFAULT_TIMEOUT, VendorClient
from vendorflow.http.redact import redact_url
from vendorflow.http.retry import RetryPolicy
from vendorflow.http.tokens import TokenManager

# The range every numeric extra must fall in, with its unit, checked before the first request: a
# typo (a rate of 0.000001/s stalls a credential for days; a concurrency of 10000 starts thousands
# of threads) fails the task at once, naming the connection and the extra.
BOUNDS: dict[str, tuple[float, float, str]] = {
    "requests_per_second": (0.01, 10_000, "requests per second"),
    "concurrency": (1, 64, "requests in flight"),
    "page_size": (1, 10_000, "records per page"),
    "connect_timeout": (0.05, 300, "seconds"),
    "timeout": (0.05, 3_600, "seconds"),
    "request_deadline": (0.1, 3_600, "seconds"),
    "retries": (1, 20, "attempts"),
    "backoff_seconds": (0.001, 600, "seconds"),
    "max_backoff_seconds": (0.001, 3_600, "seconds"),
    "token_leeway_seconds": (0, 86_400, "seconds"),
}


FORM_DEFAULT: Any = object()  # an extra's default is the one its connection form declares


class VendorHook(BaseHook):
    """Base of the five vendor hooks; subclasses set the class attributes and build the client."""

    conn_name_attr: ClassVar[str]
    default_conn_name: ClassVar[str]
    conn_type: ClassVar[str]
    hook_name: ClassVar[str]
    vendor_name: ClassVar[str]
    default_host: ClassVar[str | None] = None

    def __init__(self, conn_id: str | None = None, **kwargs: Any) -> None:
        # Airflow's connection test (the Test button) builds a hook as ``Hook(<conn_name_attr>=conn_id)``.
        named = kwargs.pop(self.conn_name_attr, None)
        super().__init__(**kwargs)
        self.conn_id = conn_id or named or self.default_conn_name

    # -- connection --------------------------------------------------------------------

    @cached_property
    def connection(self) -> Any:
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            return self.get_connection(self.conn_id)
        except AirflowNotFoundException:
            raise ConfigError(
                f"{self.vendor_name}: connection {self.conn_id!r} does not exist. Create it (Admin > Connections, "
                f"type {self.hook_name}, or AIRFLOW_CONN_{self.conn_id.upper()}), or correct the account's conn_id "
                f"in the file VENDORFLOW_ACCOUNTS names"
            ) from None

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
        return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in value.items()}

    @classmethod
    def form_default(cls, key: str) -> Any:
        """The default of an extra, as the vendor's connection form declares it (the one place
        defaults are written: the form shows them, the hook uses them)."""
        from vendorflow import vendors

        field = vendors.module(cls.conn_type, "form").FORM["conn-fields"].get(key)
        return field["schema"].get("default") if field else None

    def config_error(self, problem: str) -> ConfigError:
        return ConfigError(f"Connection {self.conn_id!r} ({self.vendor_name}): {problem}")

    def extra_str(self, key: str, default: Any = FORM_DEFAULT, *, required: bool = False) -> str | None:
        value = self.extras.get(key)
        if value in (None, ""):
            if required:
                raise self.config_error(f"extra {key!r} is required")
            return self.form_default(key) if default is FORM_DEFAULT else default
        if not isinstance(value, (str, int)):
            raise self.config_error(f"extra {key!r} must be a string")
        return str(value)

    def extra_float(self, key: str, default: Any = FORM_DEFAULT, *, minimum: float = 0.0) -> float | None:
        value = self.extras.get(key)
        if value in (None, ""):
            default = self.form_default(key) if default is FORM_DEFAULT else default
            return None if default is None else float(default)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise self.config_error(f"extra {key!r} must be a number, not {value!r}") from None
        if not number > minimum:
            raise self.config_error(f"extra {key!r} must be greater than {minimum:g}, not {value!r}")
        self._check_bounds(key, number)
        return number

    def _check_bounds(self, key: str, number: float) -> None:
        bounds = BOUNDS.get(key)
        if bounds and not bounds[0] <= number <= bounds[1]:
            low, high, unit = bounds
            raise self.config_error(
                f"extra {key!r} is {number:g}, out of range: it must be between {low:g} and {high:g} ({unit}); "
                f"fix it in the connection's extra"
            )

    def validate(self) -> None:
        """Check every bounded extra the connection sets (called before the first request)."""
        for key in BOUNDS:
            if self.extras.get(key) not in (None, ""):
                self.extra_float(key, None, minimum=-1e300)

    def extra_int(self, key: str, default: Any = FORM_DEFAULT, *, minimum: int = 1) -> int:
        value = self.extras.get(key)
        if value in (None, ""):
            default = self.form_default(key) if default is FORM_DEFAULT else default
            if default is None:
                raise self.config_error(f"extra {key!r} is required")
            return int(default)
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise self.config_error(f"extra {key!r} must be a whole number, not {value!r}") from None
        if number < minimum:
            raise self.config_error(f"extra {key!r} must be at least {minimum}, not {value!r}")
        self._check_bounds(key, number)
        return number

    def base_url(self, host: str | None = None, *, default: str | None = None) -> str:
        """The connection's host as a base URL (scheme, host, port and any path prefix).

        The host must carry its scheme (``https://...``) unless the connection's
        schema field says ``http`` or ``https``; a port field goes into the
        authority, never after the path.
        """
        explicit = host is not None
        host = (host if explicit else self.connection.host) or default or self.default_host
        what = "a service URL" if explicit else "host"
        if not host:
            raise self.config_error("host is required: the vendor API's base URL, e.g. https://api.example.com")
        host = host.strip().rstrip("/")
        if "://" not in host:
            scheme = (self.connection.schema or "").strip().lower()
            if scheme not in ("http", "https"):
                raise self.config_error(
                    f"{what} {host!r} has no scheme: write it as https://{host} (or http://{host} for a "
                    f"plain-HTTP sandbox or proxy)"
                )
            host = f"{scheme}://{host}"
        parts = urlsplit(host)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise self.config_error(f"{what} {redact_url(host)!r} is not an http:// or https:// URL with a host name")
        port = self.connection.port if not explicit else None
        if port:
            try:
                existing = parts.port
            except ValueError:
                raise self.config_error(f"{what} {redact_url(host)!r} has an invalid port") from None
            if existing is None:
                parts = parts._replace(netloc=f"{parts.netloc}:{int(port)}")
            elif existing != int(port):
                raise self.config_error(
                    f"host {redact_url(host)!r} says port {existing} but the port field says {port}: keep one"
                )
        return urlunsplit(parts)

    def secret(self, field: str, what: str) -> str:
        value = getattr(self.connection, field, None)
        if not value:
            raise self.config_error(f"the {field} field is empty: it must hold the {what}")
        from vendorflow.http.tokens import mask

        mask(str(value))
        return str(value)

    # -- HTTP --------------------------------------------------------------------------

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.extra_int("retries"),
            initial=self.extra_float("backoff_seconds") or 1.0,
            maximum=self.extra_float("max_backoff_seconds") or 60.0,
        )

    def timeout(self) -> tuple[float, float]:
        return (
            self.extra_float("connect_timeout") or DEFAULT_TIMEOUT[0],
            self.extra_float("timeout") or DEFAULT_TIMEOUT[1],
        )

    def request_deadline(self) -> float | None:
        """Seconds a whole request may take, body included (extra ``request_deadline``;
        default: ``connect_timeout`` + ``timeout``)."""
        return self.extra_float("request_deadline", None)

    @property
    def concurrency(self) -> int:
        return self.extra_int("concurrency")

    @cached_property
    def client(self) -> VendorClient:
        self.validate()
        return self.build_client()

    def build_client(self) -> VendorClient:
        raise NotImplementedError

    @property
    def tokens(self) -> TokenManager:
        """The shared token cache of this connection's credential (hooks whose auth fetches tokens)."""
        from vendorflow.http.auth import RefreshableAuth

        auth = self.client.auth
        if not isinstance(auth, RefreshableAuth):
            raise TypeError(f"{self.vendor_name} authenticates without tokens")
        return auth.tokens

    def get_conn(self) -> VendorClient:
        return self.client

    # -- connection test ---------------------------------------------------------------

    def ping(self) -> str:
        """One cheap authenticated call; returns what to show on success."""
        raise NotImplementedError

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.validate()
            return True, self.ping()
        except Exception as exc:  # the UI wants a message, not a traceback
            return False, f"{type(exc).__name__}: {exc}"
