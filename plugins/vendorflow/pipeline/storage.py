"""The data lake layout, streaming Parquet writes, atomic publish and quarantine.

``<root>/<vendor>/<dataset>/dt=YYYY-MM-DD/data.parquet`` is the only file a
partition holds. A run writes into ``<root>/_staging/`` (same filesystem, so
publishing is one ``os.replace``: readers see the old file or the new one,
never half of one and never both); on an object store the staging file is
local and publishing is a single object PUT, which is atomic there too.
Output that fails validation moves to ``<root>/_quarantine/`` with its
validation result. Both underscore folders are invisible to the documented
readers (``*/*.parquet`` globs and pyarrow's dataset discovery).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

DATA_FILE = "data.parquet"
MANIFEST_FILE = "_manifest.json"
ROW_GROUP_ROWS = 128 * 1024


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
        return self.join(key, f"dt={dt}")

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

    def publish(self, staged: Path, key: str, dt: date | str, manifest: dict[str, Any]) -> str:
        """Make ``staged`` the partition's only data file, atomically; returns its path."""
        folder = self.partition_path(key, dt)
        final = f"{folder}/{DATA_FILE}"
        fs = self.fs
        fs.makedirs(folder, exist_ok=True)
        if self.is_local:
            os.replace(staged, final)
        else:
            fs.put_file(str(staged), final)
            staged.unlink()
        for other in fs.glob(f"{folder}/*.parquet"):
            if other.rstrip("/").split("/")[-1] != DATA_FILE:
                fs.rm(other)  # files of an older layout: never two data files in one partition
        self._write_json(f"{folder}/{MANIFEST_FILE}", manifest)
        return final

    def quarantine(self, staged: Path, key: str, dt: date | str, token: str, validation: dict[str, Any]) -> str:
        """Move a failed batch aside with its validation result; returns the folder."""
        folder = self.join("_quarantine", key, f"dt={dt}", token)
        fs = self.fs
        fs.makedirs(folder, exist_ok=True)
        if self.is_local:
            shutil.move(str(staged), f"{folder}/{DATA_FILE}")
        else:
            fs.put_file(str(staged), f"{folder}/{DATA_FILE}")
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

    def read_manifest(self, key: str, dt: date | str) -> dict[str, Any] | None:
        path = f"{self.partition_path(key, dt)}/{MANIFEST_FILE}"
        try:
            with self.fs.open(path, "rb") as handle:
                return json.loads(handle.read())
        except FileNotFoundError:
            return None

    def partitions(self, key: str) -> list[str]:
        """The ``dt`` values of a dataset's published partitions, sorted."""
        try:
            entries = self.fs.ls(self.dataset_path(key), detail=False)
        except FileNotFoundError:
            return []
        found = []
        for entry in entries:
            name = entry.rstrip("/").split("/")[-1]
            if name.startswith("dt=") and self.fs.exists(f"{entry}/{DATA_FILE}"):
                found.append(name[3:])
        return sorted(found)
