"""Benchmarks of "hosts": processes with state directories of their own that share only a Redis (and a
PostgreSQL ledger), as workers on separate machines would."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

REDIS = os.environ.get("VENDORFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379")
POSTGRES = os.environ.get("VENDORFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def scratch_redis(db: int = 9) -> Iterator[str]:
    """A Redis database emptied before and after (the machine's Redis; start it if it is not running)."""
    import redis

    url = f"{REDIS}/{db}"
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        raise SystemExit(
            f"Redis is not reachable at {REDIS}: start it, or set VENDORFLOW_TEST_REDIS_URL ({exc})"
        ) from None
    try:
        yield url
    finally:
        client.flushdb()


@contextlib.contextmanager
def scratch_postgres() -> Iterator[str]:
    """A database of its own on the machine's PostgreSQL, dropped afterwards."""
    import psycopg

    try:
        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise SystemExit(
            f"PostgreSQL is not reachable: start it, or set VENDORFLOW_TEST_POSTGRES_URL ({exc})"
        ) from None
    name = f"vf_bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES.rsplit('/', 1)[0]}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
