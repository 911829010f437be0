"""A published Parquet partition as the CSV or JSON file a vendor's upload takes, streamed.

File contents (both formats, the same text): the partition's columns in
order; dates ``YYYY-MM-DD``; instants ISO 8601 in UTC with ``Z``; money as
its exact decimal text (a JSON string, so no digit is lost); booleans
``true``/``false``; nulls empty (CSV) or ``null`` (JSON).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING

from vendorflow.errors import ConfigError

if TYPE_CHECKING:
    import pyarrow as pa

FORMATS = ("csv", "json")


def wire_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with dates, instants and money as the text the upload file carries."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = []
    for column in batch.columns:
        kind = column.type
        if pa.types.is_timestamp(kind):
            utc = column.cast(pa.timestamp(kind.unit, tz="UTC")) if kind.tz is None else column
            column = pc.strftime(utc, format="%Y-%m-%dT%H:%M:%SZ")
        elif pa.types.is_date(kind) or pa.types.is_decimal(kind):
            column = column.cast(pa.string())
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def export_partition(
    source: IO[bytes] | str | Path,
    out: Path,
    fmt: str,
    *,
    columns: Iterable[str] | None = None,
    batch_rows: int = 64 * 1024,
) -> tuple[int, int]:
    """Write a Parquet file as CSV (header row) or a JSON array of objects; returns ``(rows, bytes)``.

    One record batch at a time (``iter_batches``), so memory is bounded by the
    batch, not the partition.
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt not in FORMATS:
        raise ValueError(f"format must be csv or json, not {fmt!r}")
    parquet = pq.ParquetFile(source)
    wanted = list(columns) if columns else None
    if wanted:
        unknown = [c for c in wanted if c not in parquet.schema_arrow.names]
        if unknown:
            raise ConfigError(f"columns {unknown} are not in the partition (it has {parquet.schema_arrow.names})")
    rows = 0
    with out.open("wb") as handle:
        if fmt == "csv":
            empty = _empty_batch(parquet.schema_arrow, wanted)  # the header, even for an empty partition
            with pacsv.CSVWriter(handle, empty.schema) as writer:
                for batch in parquet.iter_batches(batch_size=batch_rows, columns=wanted):
                    writer.write_batch(wire_batch(batch))
                    rows += batch.num_rows
        else:
            handle.write(b"[")
            first = True
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=wanted):
                for record in wire_batch(batch).to_pylist():
                    text = json.dumps(record, ensure_ascii=False, allow_nan=False).encode()
                    handle.write((b"\n" if first else b",\n") + text)
                    first = False
                rows += batch.num_rows
            handle.write(b"\n]\n")
    return rows, out.stat().st_size


def _empty_batch(schema: pa.Schema, columns: list[str] | None) -> pa.RecordBatch:
    import pyarrow as pa

    chosen = pa.schema([schema.field(c) for c in columns]) if columns else schema
    return wire_batch(pa.RecordBatch.from_pylist([], schema=chosen))
