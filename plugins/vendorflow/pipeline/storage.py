"""The data lake layout, streaming Parquet writes, atomic publish and quarantine.

``<root>/<vendor>/<dataset>/dt=YYYY-MM-DD/data.parquet`` is the ``default``
account's whole partition (the only account without ``VENDORFLOW_ACCOUNTS``,
so a deployment with one account keeps the layout it had before accounts), and
``<account>.parquet`` beside it another account's. Each file
carries its own manifest (rows, run, validation) in its Parquet footer's
key-value metadata, so data and manifest are published in one step and can
never disagree. Accounts of one day sit side by side in the day's folder, so
``*/*.parquet`` still reads the dataset as one table, and a rerun of one
account's day replaces that account's file only. A run writes into ``<root>/_staging/``
(same filesystem, so publishing is one ``os.replace``: readers see the old
file or the new one, never half of one and never both); on an object store
the staging file is local and publishing is a single object PUT, which is
atomic there too. Runs of one account's partition take its lock
(``<root>/_locks/...``) from "what is published now?" to publishing, so two
runs of one date never interleave. Output that fails validation moves to
``<root>/_quarantine/`` with its validation result. The underscore folders
are invisible to the documented readers (``*/*.parquet`` globs and pyarrow's
dataset discovery). Staging files of dead runs are removed after
``VENDORFLOW_STAGING_MAX_AGE_HOURS`` (6). Files written before accounts have no
``account`` column; :mod:`vendorflow.pipeline.upgrade` adds it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

from vendorflow.accounts import DEFAULT as DEFAULT_ACCOUNT

DATA_FILE = "data.parquet"  # the default account's file (see data_file_name)
LEGACY_MANIFEST_FILE = "_manifest.json"  # partitions published before the manifest moved into the footer
MANIFEST_KEY = b"vendorflow.manifest"
ROW_GROUP_ROWS = 128 * 1024


NAMED_FILE = re.compile(r"^[a-z][a-z0-9_-]{0,31}\.parquet$")  # data.parquet, <account>.parquet


def _lock_suffix(account: str) -> str:
    return "" if account == DEFAULT_ACCOUNT else f".{account}"


class StorageError(OSError):
    """Writing to the data root failed; the message names the dataset, the file and the cause."""


def storage_error(dataset: str, dt: date | str, path: object, error: OSError, doing: str) -> StorageError:
    reason = error.strerror or str(error)
    hint = ""
    if error.errno == errno.ENOSPC:
        hint = " The disk is full: free space there, or point the Variable data_root at a larger volume."
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = " Make it writable for the Airflow user, or point the Variable data_root elsewhere."
    return StorageError(error.errno, f"{dataset} dt={dt}: {doing} {path} failed: {reason}.{hint}")


def data_file_name(account: str = DEFAULT_ACCOUNT) -> str:
    """The name of an account's data file in a partition folder: ``data.parquet`` for the default account
    (the name it had before accounts), ``<account>.parquet`` for the others (``data`` is no account name)."""
    return DATA_FILE if account == DEFAULT_ACCOUNT else f"{account}.parquet"


def sealed_file(staged: Path) -> Path:
    """Where :meth:`Lake.seal` writes the staged file's sealed copy."""
    return staged.with_name(staged.stem + ".sealed.parquet")


def staging_max_age_seconds() -> float:
    return float(os.environ.get("VENDORFLOW_STAGING_MAX_AGE_HOURS", "6")) * 3600


def run_token(run_id: str, try_number: int | None = None) -> str:
    """A filesystem-safe, unique name for one attempt of one run."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)[:80]
    return f"{safe}-try{try_number or 0}-{uuid.uuid4().hex[:8]}"


class ParquetStream:
    """Writes record batches to one Parquet file as they come, in row groups of ``row_group_rows``.

    Small pages are buffered up to a row group, so memory is bounded by the
    row-group size (or the page size, if larger), never by the data size.
    """

    def __init__(self, path: Path, schema: pa.Schema, *, row_group_rows: int = ROW_GROUP_ROWS) -> None:
        self.path = path
        self.schema = schema
        self.row_group_rows = row_group_rows
        path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(path, schema, compression="zstd", write_statistics=True)
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        self._buffer.append(batch)
        self._buffered += batch.num_rows
        self.rows += batch.num_rows
        if self._buffered >= self.row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            table = pa.Table.from_batches(self._buffer, schema=self.schema)
            self._writer.write_table(table, row_group_size=max(self.row_group_rows, table.num_rows))
            self._buffer, self._buffered = [], 0

    def close(self) -> int:
        self._flush()
        if self.rows == 0:
            self._writer.write_table(self.schema.empty_table())
        self._writer.close()
        return self.path.stat().st_size

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@dataclass(frozen=True)
class Lake:
    """The data root: a local folder or any fsspec URL."""

    root: str

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return fsspec.core.url_to_fs(self.root)[0]

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    @property
    def base(self) -> str:
        return fsspec.core.url_to_fs(self.root)[1].rstrip("/")

    def join(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def dataset_path(self, key: str) -> str:
        return self.join(key)

    def partition_path(self, key: str, dt: date | str) -> str:
        """The day's folder, shared by every account's file."""
        return self.join(key, f"dt={dt}")

    def data_file(self, key: str, dt: date | str, account: str = DEFAULT_ACCOUNT) -> str:
        """An account's published file of a day (it may not exist)."""
        return f"{self.partition_path(key, dt)}/{data_file_name(account)}"

    def url(self, path: str) -> str:
        """A path as users would type it: a plain local path, or the store's URL."""
        if self.is_local:
            return path
        return self.fs.unstrip_protocol(path)

    # -- staging, publish, quarantine ------------------------------------------------

    def staging_file(self, key: str, dt: date | str, token: str) -> Path:
        if self.is_local:
            folder = Path(self.join("_staging", key, f"dt={dt}"))
        else:
            folder = Path(tempfile.gettempdir()) / "vendorflow-staging" / key / f"dt={dt}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{token}.parquet"

    def seal(self, staged: Path, manifest: dict[str, Any]) -> Path:
        """The staged file rewritten with ``manifest`` in its footer (row groups kept as they are);
        the returned file is what :meth:`publish` moves into place."""
        source = pq.ParquetFile(staged)
        schema = source.schema_arrow
        metadata = {**(schema.metadata or {}), MANIFEST_KEY: json.dumps(manifest, sort_keys=True, default=str).encode()}
        schema = schema.with_metadata(metadata)
        sealed = sealed_file(staged)
        try:
            with pq.ParquetWriter(sealed, schema, compression="zstd", write_statistics=True) as writer:
                for index in range(source.num_row_groups):
                    group = source.read_row_group(index).replace_schema_metadata(metadata)
                    writer.write_table(group, row_group_size=max(group.num_rows, 1))
                if source.num_row_groups == 0:
                    writer.write_table(schema.empty_table())
        except BaseException:
            sealed.unlink(missing_ok=True)
            raise
        finally:
            source.close()
        staged.unlink(missing_ok=True)
        return sealed

    def publish(
        self,
        staged: Path,
        key: str,
        dt: date | str,
        manifest: dict[str, Any] | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> str:
        """Make ``staged`` the account's data file of the day, atomically; returns its path.

        With ``manifest``, the file is first sealed with it (see :meth:`seal`); a
        file sealed already is published as it is.
        """
        if manifest is not None:
            staged = self.seal(staged, manifest)
        folder = self.partition_path(key, dt)
        final = self.data_file(key, dt, account)
        fs = self.fs
        fs.makedirs(folder, exist_ok=True)
        if self.is_local:
            os.replace(staged, final)
        else:
            fs.put_file(str(staged), final)
            staged.unlink()
        for other in fs.ls(folder, detail=False):  # files of an older layout, never another account's file
            name = other.rstrip("/").split("/")[-1]
            stale = name.endswith(".parquet") and (name.startswith("part-") or not NAMED_FILE.match(name))
            if stale or (account == DEFAULT_ACCOUNT and name == LEGACY_MANIFEST_FILE):
                fs.rm(other)
        return final

    @contextlib.contextmanager
    def partition_lock(self, key: str, dt: date | str, account: str = DEFAULT_ACCOUNT) -> Iterator[None]:
        """Exclusive use of one account's partition, from reading what is published to publishing.

        With ``VENDORFLOW_LEDGER_URL`` set, a lease in that database: every host. Otherwise an
        ``flock`` under the data root (every process of this machine; an object store's data root
        keeps its locks in the state directory)."""
        from vendorflow import settings

        if settings.ledger_url():
            from vendorflow.ledger import lease

            with lease(f"partition.{key}.dt={dt}{_lock_suffix(account)}"):
                yield
            return
        if self.is_local:
            path = Path(self.join("_locks", key, f"dt={dt}{_lock_suffix(account)}.lock"))
        else:
            path = settings.state_dir() / "partition-locks" / key / f"dt={dt}{_lock_suffix(account)}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock; a killed holder's lock goes with its process

    def clean_staging(self, key: str, *, max_age: float | None = None, now: float | None = None) -> int:
        """Remove staging files of ``key`` that no run has touched for ``max_age`` seconds (runs that
        died); returns how many were removed."""
        max_age = staging_max_age_seconds() if max_age is None else max_age
        now = time.time() if now is None else now
        folder = (
            Path(self.join("_staging", key))
            if self.is_local
            else Path(tempfile.gettempdir()) / "vendorflow-staging" / key
        )
        removed = 0
        for path in folder.glob("dt=*/*.parquet"):
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > max_age:
                    path.unlink()
                    removed += 1
        return removed

    def quarantine(
        self,
        staged: Path,
        key: str,
        dt: date | str,
        token: str,
        validation: dict[str, Any],
        account: str = DEFAULT_ACCOUNT,
    ) -> str:
        """Move a failed batch aside with its validation result; returns the folder."""
        folder = self.join("_quarantine", key, f"dt={dt}", token)
        fs = self.fs
        fs.makedirs(folder, exist_ok=True)
        if self.is_local:
            shutil.move(str(staged), f"{folder}/{data_file_name(account)}")
        else:
            fs.put_file(str(staged), f"{folder}/{data_file_name(account)}")
            staged.unlink()
        self._write_json(f"{folder}/validation.json", validation)
        return folder

    def _write_json(self, path: str, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, indent=2, sort_keys=True, default=str).encode()
        if self.is_local:
            tmp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
            Path(tmp).write_bytes(data)
            os.replace(tmp, path)
        else:
            with self.fs.open(path, "wb") as handle:
                handle.write(data)

    def read_manifest(self, key: str, dt: date | str, account: str = DEFAULT_ACCOUNT) -> dict[str, Any] | None:
        """The manifest of the account's published partition, from its data file's footer (``bytes`` is the
        file's size); ``None`` when nothing is published."""
        folder = self.partition_path(key, dt)
        path = self.data_file(key, dt, account)
        try:
            with self.fs.open(path, "rb") as handle:
                size = self.fs.size(path)
                metadata = pq.read_schema(handle).metadata or {}
        except FileNotFoundError:
            return None
        raw = metadata.get(MANIFEST_KEY)
        if raw is None:  # published before manifests moved into the footer
            try:
                with self.fs.open(f"{folder}/{LEGACY_MANIFEST_FILE}", "rb") as handle:
                    return json.loads(handle.read())
            except FileNotFoundError:
                return None
        manifest = json.loads(raw)
        manifest["bytes"] = size
        return manifest

    def partitions(self, key: str, account: str | None = None) -> list[str]:
        """The ``dt`` values of a dataset's published partitions (of ``account``, or of any account), sorted."""
        try:
            entries = self.fs.ls(self.dataset_path(key), detail=False)
        except FileNotFoundError:
            return []
        found = []
        for entry in entries:
            name = entry.rstrip("/").split("/")[-1]
            if not name.startswith("dt="):
                continue
            if account is not None:
                if self.fs.exists(self.data_file(key, name[3:], account)):
                    found.append(name[3:])
            elif self.accounts(key, name[3:]):
                found.append(name[3:])
        return sorted(found)

    def accounts(self, key: str, dt: date | str) -> list[str]:
        """The accounts with a published file of the day, sorted."""
        try:
            names = [e.rstrip("/").split("/")[-1] for e in self.fs.ls(self.partition_path(key, dt), detail=False)]
        except FileNotFoundError:
            return []
        return sorted(
            DEFAULT_ACCOUNT if n == DATA_FILE else n[: -len(".parquet")]
            for n in names
            if NAMED_FILE.match(n) and not n.startswith("part-")
        )
