"""Runtime settings, read when a task runs (never at DAG parse time).

Airflow Variables (so also ``AIRFLOW_VAR_*`` environment variables):

- ``data_root``: where datasets live; a local path or an fsspec URL. Default: ``data/`` in the project.
- ``pii_mode``: ``hmac`` (default) or ``plain``.
- ``pii_hmac_key``: the secret key for pseudonymising e-mails and phone numbers.

Environment variables, because they configure machinery shared by processes
that may run before any Variable can be read:

- ``VENDORFLOW_STATE_DIR``: where the rate-limit budgets and token caches shared
  by the processes of one machine live. Default ``$AIRFLOW_HOME/vendorflow-state``.
- ``VENDORFLOW_REDIS_URL``: when set, budgets and tokens live in this Redis
  instead, so several machines share them (the docker-compose deployment sets it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from vendorflow.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_ROOT = PROJECT_ROOT / "data"

PiiMode = Literal["hmac", "plain"]


def _variable(key: str, default: str | None = None) -> str | None:
    from airflow.sdk import Variable

    try:
        return Variable.get(key, default=default)
    except Exception:  # outside Airflow (a unit test, the bench), the environment still answers
        return os.environ.get(f"AIRFLOW_VAR_{key.upper()}", default)


def data_root() -> str:
    root = _variable("data_root") or str(DEFAULT_DATA_ROOT)
    return root.rstrip("/") or "/"


def pii_mode() -> PiiMode:
    mode = (_variable("pii_mode") or "hmac").strip().lower()
    if mode not in ("hmac", "plain"):
        raise ConfigError(f"Variable pii_mode must be 'hmac' or 'plain', not {mode!r}")
    return mode  # type: ignore[return-value]


def pii_hmac_key() -> bytes:
    key = _variable("pii_hmac_key")
    if not key:
        raise ConfigError(
            "Variable pii_hmac_key is not set: it keys the HMAC that pseudonymises e-mails and phone "
            "numbers. Set it (e.g. AIRFLOW_VAR_PII_HMAC_KEY) to a long random secret, or set "
            "pii_mode=plain to store them in clear."
        )
    return key.encode()


def state_dir() -> Path:
    explicit = os.environ.get("VENDORFLOW_STATE_DIR")
    if explicit:
        path = Path(explicit)
    else:
        airflow_home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
        path = Path(airflow_home) / "vendorflow-state"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def redis_url() -> str | None:
    return os.environ.get("VENDORFLOW_REDIS_URL") or None


def ledger_url() -> str | None:
    """``VENDORFLOW_LEDGER_URL``: the PostgreSQL database of every ledger of vendor actions, shared by
    every host; unset, the ledger is an SQLite file under the state directory."""
    return os.environ.get("VENDORFLOW_LEDGER_URL") or None


_warned_half_shared = False


def warn_if_half_shared() -> None:
    """One warning per process when only one of the two shared backends is configured: the other
    one's state is still local to this host, so a second host would not see it."""
    global _warned_half_shared
    if _warned_half_shared:
        return
    redis, ledger = redis_url(), ledger_url()
    if bool(redis) == bool(ledger):
        return
    _warned_half_shared = True
    import logging

    if redis:
        what = (
            "the action ledger (uploads, events, training requests, opt-outs) is an SQLite file on this host; "
            "set VENDORFLOW_LEDGER_URL"
        )
    else:
        what = "rate budgets and token caches are files on this host; set VENDORFLOW_REDIS_URL"
    logging.getLogger("vendorflow").warning("Only one shared backend is configured: %s to share it across hosts.", what)


def redis_errors() -> tuple[type[BaseException], ...]:
    """The redis-py exceptions that mean the server cannot be used (unreachable, refused, misconfigured)."""
    import redis

    return (redis.ConnectionError, redis.TimeoutError, redis.AuthenticationError, redis.ResponseError)


def service_unusable(
    what: str, variable: str, url: str, default_port: int, error: BaseException, unset: str
) -> ConfigError:
    """A clear error for a shared service (Redis, PostgreSQL) that cannot be used: it names the variable
    and the host, never the password; ``unset`` says what happens without the variable."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    where = f"{parts.hostname or '?'}:{parts.port or default_port}{parts.path if parts.path not in ('', '/') else ''}"
    reason = " ".join(str(error).split())
    if parts.password:
        reason = reason.replace(parts.password, "***")
    return ConfigError(
        f"{what} at {where} ({variable}) cannot be used: {type(error).__name__}: {reason}. "
        f"Start it, or fix or unset {variable} ({unset})."
    )


def redis_unreachable(error: BaseException) -> ConfigError:
    return service_unusable(
        "Redis",
        "VENDORFLOW_REDIS_URL",
        redis_url() or "",
        6379,
        error,
        "unset, budgets and tokens stay on this machine",
    )


@contextlib.contextmanager
def redis_calls() -> Iterator[None]:
    """Redis errors that mean the server cannot be used, as :func:`redis_unreachable`'s clear error."""
    try:
        yield
    except redis_errors() as exc:
        raise redis_unreachable(exc) from None


def redis_client(url: str) -> Any:
    """A redis-py client for ``url`` with bounded waits; a malformed URL is a :class:`ConfigError`."""
    import redis

    try:
        return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
    except ValueError as exc:
        raise ConfigError(f"VENDORFLOW_REDIS_URL is not a Redis URL ({exc}); write it as redis://host:6379/0") from None


MAX_LOOKBACK_DAYS = 92  # Footprints refuses a wider date window; no vendor keeps changing older days


def lookback_days(dataset: str, default: int) -> int:
    """How many days before its own a daily run of ``dataset`` re-extracts: the Variable ``lookback_days``
    (a JSON object, dataset -> days, e.g. ``{"footprints/leads": 14}``), else the dataset's default."""
    import json

    raw = _variable("lookback_days")
    if not raw or not str(raw).strip():
        return default
    try:
        chosen = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        chosen = None
    if not isinstance(chosen, dict):
        raise ConfigError(
            f'Variable lookback_days must be a JSON object of dataset -> days, e.g. {{"footprints/leads": 14}}, '
            f"not {raw!r}"
        )
    value = chosen.get(dataset, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LOOKBACK_DAYS:
        raise ConfigError(
            f"Variable lookback_days: {dataset} must be a whole number of days from 0 to {MAX_LOOKBACK_DAYS}, "
            f"not {value!r}"
        )
    return value
