"""Durable, keyed records of what the pipeline *did* to a vendor, shared by every process.

Uploads, events sent, training requests and opt-outs are actions, not
extractions: before repeating one, a task must know whether it already
happened, even after a crash, a retry, a rerun or a restart. A :class:`Ledger`
is a table of ``key -> (status, data, timestamps)`` in one SQLite database
(WAL mode, so readers never block writers) under
:func:`vendorflow.settings.state_dir`, or at ``VENDORFLOW_LEDGER_PATH``.
Every write is committed before the call returns.

- ``put``/``put_many`` write entries; ``only_if`` makes a write a compare-and-set.
- ``exclusive()`` is a transaction that holds the database's write lock:
  a critical section across threads and processes ("is a training request
  due? then record it" happens in one step for everybody).
- ``entries()`` lists what happened, for publishing the ledger as a Parquet
  dataset analysts can read.

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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Entry:
    key: str
    status: str
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def _entry(row: tuple[Any, ...]) -> Entry:
    key, status, data, created, updated = row
    return Entry(key, status, json.loads(data) if data else {}, datetime.fromisoformat(created), datetime.fromisoformat(updated))


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


class Ledger:
    """One named ledger; cheap to create (the database connection is per thread)."""

    def __init__(self, name: str, path: Path | None = None) -> None:
        if not _NAME.match(name):
            raise ValueError(f"ledger name must be snake_case, not {name!r}")
        self.name = name
        self.path = path or ledger_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _unusable(self.path, sqlite3.OperationalError(f"unable to open: {exc.strerror}")) from None
        self._local = threading.local()
        try:
            with self._connection() as db:
                db.execute(
                    f'CREATE TABLE IF NOT EXISTS "{name}" ('
                    "key TEXT PRIMARY KEY, status TEXT NOT NULL, data TEXT, "
                    "created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
                )
                db.execute(f'CREATE INDEX IF NOT EXISTS "{name}_status" ON "{name}" (status)')
                db.execute(f'CREATE INDEX IF NOT EXISTS "{name}_updated" ON "{name}" (updated_at)')
        except sqlite3.Error as exc:
            if _locked(exc):
                raise
            raise _unusable(self.path, exc) from None

    # -- connections -----------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", None) != os.getpid():
            try:
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
            except sqlite3.Error as exc:
                if _locked(exc):
                    raise
                raise _unusable(self.path, exc) from None
            self._local.db, self._local.pid = db, os.getpid()
        return db

    @contextlib.contextmanager
    def _connection(self, exclusive: bool = False) -> Iterator[sqlite3.Connection]:
        db = self._db()
        try:
            db.execute("BEGIN IMMEDIATE" if exclusive else "BEGIN")
        except sqlite3.Error as exc:
            if _locked(exc):
                raise
            raise _unusable(self.path, exc) from None
        try:
            yield db
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            if _locked(exc):
                raise
            raise _unusable(self.path, exc) from None
        except BaseException:
            db.execute("ROLLBACK")
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
            "ON CONFLICT(key) DO UPDATE SET status = excluded.status, data = excluded.data, updated_at = excluded.updated_at",
            (key, status, json.dumps(dict(data or {}), default=str, sort_keys=True), now, now),
        )

    def _with_status(self, db: sqlite3.Connection, statuses: Iterable[str]) -> list[Entry]:
        statuses = list(statuses)
        marks = ",".join("?" * len(statuses))
        rows = db.execute(
            f'SELECT key, status, data, created_at, updated_at FROM "{self.name}" WHERE status IN ({marks}) ORDER BY created_at, key',
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

    def put_many(self, items: Iterable[tuple[str, str, Mapping[str, Any] | None]], *, only_if_absent: bool = False) -> int:
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
