"""Durable, keyed records of what the pipeline *did* to a vendor, shared by every process.

Uploads, events sent, training requests and opt-outs are actions, not
extractions: before repeating one, a task must know whether it already
happened, even after a crash, a retry, a rerun or a restart. A :class:`Ledger`
is a table of ``key -> (status, data, timestamps)`` in

- the PostgreSQL database of ``VENDORFLOW_LEDGER_URL``, shared by every host
  (psycopg 3; every write transaction holds the ledger's advisory lock), or
- by default, one SQLite database (WAL mode, so readers never block writers)
  under :func:`vendorflow.settings.state_dir`, or at ``VENDORFLOW_LEDGER_PATH``:
  every process of one machine.

Both mean the same. Tables are created on first use and their schema version
is kept in ``vendorflow_ledger_schema``. Every write is committed before the
call returns.

- ``put``/``put_many`` write entries; ``only_if`` makes a write a compare-and-set.
- ``exclusive()`` is a transaction that holds the database's write lock:
  a critical section across threads and processes ("is a training request
  due? then record it" happens in one step for everybody).
- ``entries()`` lists what happened, for publishing the ledger as a Parquet
  dataset analysts can read.
- :func:`lease` gives one holder at a time a named lease (the Algonomy sender,
  a partition being published) that expires when its holder stops renewing it.

Keep one ledger per vendor action (``algonomy_optouts``, ``recomendo_events``...).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vendorflow import settings
from vendorflow.errors import ConfigError

SCHEMA_VERSION = 1

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_ANY = object()  # put(only_if=_ANY): unconditional


def ledger_path() -> Path:
    explicit = os.environ.get("VENDORFLOW_LEDGER_PATH")
    return Path(explicit) if explicit else settings.state_dir() / "ledger.sqlite"


def _unusable(path: Path, error: sqlite3.Error) -> ConfigError:
    """A ledger that cannot be opened or written: say which file, why, and which setting moves it."""
    reason = str(error)
    hint = {
        "readonly": "the file or its folder is read-only for this user",
        "not a database": "the file is not an SQLite database (corrupt, or another file at that path)",
        "malformed": "the database file is corrupt",
        "unable to open": "the file cannot be created or opened (missing folder or no permission)",
        "disk I/O": "the disk failed or is full",
    }
    explained = next((text for word, text in hint.items() if word in reason), reason)
    return ConfigError(
        f"The action ledger {path} cannot be used: {explained} (sqlite: {reason}). Fix the file's permissions or "
        f"move it aside, or point VENDORFLOW_LEDGER_PATH (or VENDORFLOW_STATE_DIR) at a writable place."
    )


def _locked(error: sqlite3.Error) -> bool:
    return "locked" in str(error) or "busy" in str(error)


@contextlib.contextmanager
def _sqlite_errors(path: Path) -> Iterator[None]:
    """SQLite errors as a :class:`ConfigError` naming the file and the setting, except a busy
    database, which is worth waiting for and is raised as it is."""
    try:
        yield
    except sqlite3.Error as exc:
        if _locked(exc):
            raise
        raise _unusable(path, exc) from None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class _PgConnection:
    """A psycopg connection that takes the ledger's ``?`` placeholders."""

    def __init__(self, connection: Any) -> None:
        self.raw = connection

    def execute(self, sql: str, params: Any = ()) -> Any:
        return self.raw.execute(sql.replace("?", "%s"), tuple(params))


_PG_THREAD = threading.local()


class _Postgres:
    """The ledger's PostgreSQL side: one connection per thread and process, every write transaction
    under the ledger's advisory lock, so writes are serialised per ledger as SQLite's single writer
    does (compare-and-set and the exclusive section mean the same on both)."""

    def __init__(self, url: str) -> None:
        from urllib.parse import urlsplit

        self.url = url
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ConfigError(
                f"VENDORFLOW_LEDGER_URL must be a postgresql://user:password@host:port/database URL, "
                f"not a {parts.scheme or 'scheme-less'} URL"
            )

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        import psycopg

        try:
            yield
        except psycopg.OperationalError as exc:
            raise settings.service_unusable(
                "The action ledger's PostgreSQL",
                "VENDORFLOW_LEDGER_URL",
                self.url,
                5432,
                exc,
                "unset, the ledger is an SQLite file on this machine",
            ) from None

    def connection(self) -> _PgConnection:
        """This thread's connection to the database (one per thread and process, shared by every
        :class:`Ledger` of the same URL)."""
        connections: dict[str, tuple[int, _PgConnection]] = _PG_THREAD.__dict__.setdefault("connections", {})
        pid, db = connections.get(self.url, (None, None))
        if db is None or pid != os.getpid() or db.raw.closed:
            import psycopg

            with self.errors():
                db = _PgConnection(psycopg.connect(self.url, autocommit=True, connect_timeout=10))
            connections[self.url] = (os.getpid(), db)
        return db

    @contextlib.contextmanager
    def transaction(self, db: _PgConnection, name: str) -> Iterator[_PgConnection]:
        with db.raw.transaction():
            db.execute("SELECT pg_advisory_xact_lock(?)", (_lock_id(name),))
            yield db


def _lock_id(name: str) -> int:
    """A stable signed 64-bit advisory lock id for a ledger."""
    import hashlib

    return int.from_bytes(hashlib.sha256(f"vendorflow-ledger:{name}".encode()).digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class Entry:
    key: str
    status: str
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def _entry(row: tuple[Any, ...]) -> Entry:
    key, status, data, created, updated = row
    return Entry(
        key, status, json.loads(data) if data else {}, datetime.fromisoformat(created), datetime.fromisoformat(updated)
    )


class LedgerTransaction:
    """Reads and writes inside one transaction (see :meth:`Ledger.exclusive`)."""

    def __init__(self, ledger: Ledger, connection: sqlite3.Connection) -> None:
        self._ledger = ledger
        self._db = connection

    def get(self, key: str) -> Entry | None:
        return self._ledger._get(self._db, key)

    def put(self, key: str, status: str, data: Mapping[str, Any] | None = None) -> None:
        self._ledger._put(self._db, key, status, data)

    def with_status(self, *statuses: str) -> list[Entry]:
        return self._ledger._with_status(self._db, statuses)

    def clock(self) -> float:
        """Epoch seconds by the database's clock (PostgreSQL's, so every host agrees) or this host's."""
        if self._ledger._pg is not None:
            return float(self._db.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0])
        return time.time()


class Ledger:
    """One named ledger; cheap to create (the database connection is per thread)."""

    def __init__(self, name: str, path: Path | None = None, *, url: str | None = None) -> None:
        if not _NAME.match(name):
            raise ValueError(f"ledger name must be snake_case, not {name!r}")
        self.name = name
        self._local = threading.local()
        # An explicit path means SQLite; otherwise VENDORFLOW_LEDGER_URL (PostgreSQL) when it is set.
        self.url = url if url is not None else (None if path is not None else settings.ledger_url())
        settings.warn_if_half_shared()
        if self.url:
            self.path = None
            self._pg = _Postgres(self.url)
            with self._connection() as db:
                self._create(db)
            return
        self._pg = None
        self.path = path or ledger_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _unusable(self.path, sqlite3.OperationalError(f"unable to open: {exc.strerror}")) from None
        with _sqlite_errors(self.path), self._connection(exclusive=True) as db:  # it writes: lock first
            self._create(db)

    def _create(self, db: Any) -> None:
        """The ledger's table (created on first use) and its schema version, for a later migration."""
        name = self.name
        db.execute(
            f'CREATE TABLE IF NOT EXISTS "{name}" ('
            "key TEXT PRIMARY KEY, status TEXT NOT NULL, data TEXT, "
            "created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
        )
        db.execute(f'CREATE INDEX IF NOT EXISTS "{name}_status" ON "{name}" (status)')
        db.execute(f'CREATE INDEX IF NOT EXISTS "{name}_updated" ON "{name}" (updated_at)')
        db.execute(
            "CREATE TABLE IF NOT EXISTS vendorflow_ledger_schema (ledger TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        db.execute(
            "INSERT INTO vendorflow_ledger_schema (ledger, version) VALUES (?, ?) ON CONFLICT (ledger) DO NOTHING",
            (name, SCHEMA_VERSION),
        )

    # -- connections -----------------------------------------------------------------

    def _db(self) -> Any:
        if self._pg is not None:
            return self._pg.connection()
        db = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", None) != os.getpid():
            with _sqlite_errors(self.path):
                db = sqlite3.connect(self.path, timeout=120, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA busy_timeout=120000")
                for attempt in range(50):  # switching to WAL needs a moment alone with a new file
                    try:
                        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                            db.execute("PRAGMA journal_mode=WAL")
                        break
                    except sqlite3.OperationalError as exc:
                        if attempt == 49 or not _locked(exc):  # only a busy file is worth waiting for
                            raise
                        time.sleep(0.05 * (attempt + 1))
                db.execute("PRAGMA synchronous=FULL")  # an acknowledged write survives a power cut
            self._local.db, self._local.pid = db, os.getpid()
        return db

    @contextlib.contextmanager
    def _connection(self, exclusive: bool = False) -> Iterator[Any]:
        if self._pg is not None:
            with self._pg.errors(), self._pg.transaction(self._pg.connection(), self.name) as db:
                yield db
            return
        db = self._db()
        with _sqlite_errors(self.path):
            db.execute("BEGIN IMMEDIATE" if exclusive else "BEGIN")
        try:
            yield db
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                with _sqlite_errors(self.path):
                    raise
            raise
        else:
            db.execute("COMMIT")

    # -- primitives (used by both the ledger and transactions) ------------------------

    def _get(self, db: sqlite3.Connection, key: str) -> Entry | None:
        row = db.execute(
            f'SELECT key, status, data, created_at, updated_at FROM "{self.name}" WHERE key = ?', (key,)
        ).fetchone()
        return _entry(row) if row else None

    def _put(self, db: sqlite3.Connection, key: str, status: str, data: Mapping[str, Any] | None) -> None:
        from vendorflow.http.redact import redact_value

        now = _now()
        data = redact_value(dict(data or {}))  # a vendor answer may echo a token: never keep one
        db.execute(
            f'INSERT INTO "{self.name}" (key, status, data, created_at, updated_at) VALUES (?, ?, ?, ?, ?) '
            "ON CONFLICT(key) DO UPDATE SET status = excluded.status, data = excluded.data, updated_at = "
            "excluded.updated_at",
            (key, status, json.dumps(dict(data or {}), default=str, sort_keys=True), now, now),
        )

    def _with_status(self, db: sqlite3.Connection, statuses: Iterable[str]) -> list[Entry]:
        statuses = list(statuses)
        marks = ",".join("?" * len(statuses))
        rows = db.execute(
            f'SELECT key, status, data, created_at, updated_at FROM "{self.name}" WHERE status IN ({marks}) ORDER '
            "BY created_at, key",
            statuses,
        ).fetchall()
        return [_entry(r) for r in rows]

    # -- public API --------------------------------------------------------------------

    def get(self, key: str) -> Entry | None:
        return self._get(self._db(), key)

    def get_many(self, keys: Iterable[str]) -> dict[str, Entry]:
        keys = list(keys)
        found: dict[str, Entry] = {}
        db = self._db()
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in db.execute(
                f'SELECT key, status, data, created_at, updated_at FROM "{self.name}" WHERE key IN ({marks})', chunk
            ):
                entry = _entry(row)
                found[entry.key] = entry
        return found

    def put(self, key: str, status: str, data: Mapping[str, Any] | None = None, *, only_if: Any = _ANY) -> bool:
        """Write an entry; with ``only_if`` (a status, or ``None`` for "absent") only from that state.

        Returns whether the entry was written.
        """
        with self._connection(exclusive=only_if is not _ANY) as db:
            if only_if is not _ANY:
                current = self._get(db, key)
                if (current.status if current else None) != only_if:
                    return False
            self._put(db, key, status, data)
            return True

    def put_many(
        self, items: Iterable[tuple[str, str, Mapping[str, Any] | None]], *, only_if_absent: bool = False
    ) -> int:
        """Write many entries in one transaction; returns how many were written."""
        written = 0
        with self._connection(exclusive=True) as db:
            for key, status, data in items:
                if only_if_absent and self._get(db, key) is not None:
                    continue
                self._put(db, key, status, data)
                written += 1
        return written

    def with_status(self, *statuses: str) -> list[Entry]:
        return self._with_status(self._db(), statuses)

    def entries(self, *, updated_since: datetime | None = None) -> Iterator[Entry]:
        """Every entry (or those changed since a moment), oldest change first."""
        query = f'SELECT key, status, data, created_at, updated_at FROM "{self.name}"'
        params: tuple[Any, ...] = ()
        if updated_since is not None:
            query += " WHERE updated_at >= ?"
            params = (updated_since.astimezone(timezone.utc).isoformat(timespec="microseconds"),)
        for row in self._db().execute(query + " ORDER BY updated_at, key", params):
            yield _entry(row)

    def count(self, status: str | None = None) -> int:
        if status is None:
            return int(self._db().execute(f'SELECT COUNT(*) FROM "{self.name}"').fetchone()[0])
        return int(self._db().execute(f'SELECT COUNT(*) FROM "{self.name}" WHERE status = ?', (status,)).fetchone()[0])

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[LedgerTransaction]:
        """A transaction holding the write lock: one thread or process at a time, on one machine."""
        with self._connection(exclusive=True) as db:
            yield LedgerTransaction(self, db)


# --- leases: one holder at a time, on every host, released when the holder dies -----------------------

LEASES = "vendorflow_leases"


def _lease_seconds() -> float:
    return float(os.environ.get("VENDORFLOW_LEASE_SECONDS", "60"))


def _holder_gone(holder: str) -> bool:
    """Whether a holder of this host is a process that no longer exists (its lease can go at once)."""
    import socket

    host, _, rest = holder.partition("|")
    pid = rest.partition("|")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@contextlib.contextmanager
def lease(
    name: str, *, seconds: float | None = None, log: Any = None, poll: float = 0.2, ledger: Ledger | None = None
) -> Iterator[None]:
    """Hold the lease ``name`` for the block: one holder at a time across threads, processes and (with
    ``VENDORFLOW_LEDGER_URL``) hosts. The holder renews it every third of ``seconds``; a holder that
    dies stops renewing, and its lease is taken over when it expires (at once on its own host, where
    a dead process is seen). Expiry is read on the database's clock, so hosts need not agree on time."""
    import socket
    import uuid

    seconds = seconds or _lease_seconds()
    leases = ledger or Ledger(LEASES)
    me = f"{socket.gethostname()}|{os.getpid()}|{threading.get_ident()}|{uuid.uuid4().hex[:8]}"
    announced = False
    while True:
        with leases.exclusive() as tx:
            current = tx.get(name)
            holder = str(current.data.get("holder", "")) if current else ""
            free = (
                current is None
                or current.status != "held"
                or float(current.data.get("expires_at", 0)) < tx.clock()
                or _holder_gone(holder)
            )
            if free:
                tx.put(name, "held", {"holder": me, "expires_at": tx.clock() + seconds})
                break
        if not announced and log is not None:
            log.info("Waiting for %s, held by %s", name, holder.rpartition("|")[0])
            announced = True
        time.sleep(poll)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(seconds / 3):
            with leases.exclusive() as tx:
                current = tx.get(name)
                if current is not None and current.data.get("holder") == me:
                    tx.put(name, "held", {"holder": me, "expires_at": tx.clock() + seconds})

    renewer = threading.Thread(target=renew, name=f"lease-{name}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()
        with leases.exclusive() as tx:
            current = tx.get(name)
            if current is not None and current.data.get("holder") == me:
                tx.put(name, "released", {"holder": me, "released_at": tx.clock()})
