"""Layout, streaming writes, atomic publish and quarantine."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vendorflow.pipeline.storage import DATA_FILE, Lake, ParquetStream, run_token

SCHEMA = pa.schema([pa.field("id", pa.int64()), pa.field("name", pa.string())])


def batch(start: int, n: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {"id": list(range(start, start + n)), "name": [f"n{i}" for i in range(start, start + n)]}, schema=SCHEMA
    )


def test_stream_buffers_small_pages_into_row_groups(tmp_path: Path) -> None:
    stream = ParquetStream(tmp_path / "x.parquet", SCHEMA, row_group_rows=1000)
    for i in range(25):
        stream.write(batch(i * 100, 100))
    stream.close()
    meta = pq.ParquetFile(tmp_path / "x.parquet").metadata
    assert meta.num_rows == 2500
    assert meta.num_row_groups == 3  # 1000 + 1000 + 500, not 25 tiny groups
    assert meta.row_group(0).column(0).compression == "ZSTD"


def test_an_empty_batch_still_writes_a_readable_file(tmp_path: Path) -> None:
    stream = ParquetStream(tmp_path / "e.parquet", SCHEMA)
    stream.close()
    assert pq.read_table(tmp_path / "e.parquet").schema == SCHEMA


def test_publish_replaces_the_partition_atomically(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "root"))
    for run, rows in (("run-1", 10), ("run-2", 4)):
        staged = lake.staging_file("v/d", "2024-03-01", run_token(run))
        stream = ParquetStream(staged, SCHEMA)
        stream.write(batch(0, rows))
        stream.close()
        final = lake.publish(staged, "v/d", "2024-03-01", {"rows": rows})
        assert not staged.exists()
    partition = tmp_path / "root" / "v" / "d" / "dt=2024-03-01"
    assert sorted(p.name for p in partition.iterdir()) == [DATA_FILE]  # the manifest is in its footer
    assert pq.read_table(final).num_rows == 4
    assert lake.partitions("v/d") == ["2024-03-01"]
    assert lake.read_manifest("v/d", "2024-03-01") == {"rows": 4, "bytes": Path(final).stat().st_size}
    assert not list((tmp_path / "root").glob("v/d/*/*.tmp"))


def test_publish_removes_data_files_of_an_older_layout(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    partition = tmp_path / "v" / "d" / "dt=2024-03-01"
    partition.mkdir(parents=True)
    pq.write_table(pa.Table.from_batches([batch(0, 3)]), partition / "part-0.parquet")
    staged = lake.staging_file("v/d", "2024-03-01", "t")
    stream = ParquetStream(staged, SCHEMA)
    stream.write(batch(0, 2))
    stream.close()
    lake.publish(staged, "v/d", "2024-03-01", {})
    assert [p.name for p in partition.glob("*.parquet")] == [DATA_FILE]


def test_quarantine_keeps_the_batch_and_its_validation_out_of_readers_sight(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    staged = lake.staging_file("v/d", "2024-03-01", "tok")
    stream = ParquetStream(staged, SCHEMA)
    stream.write(batch(0, 2))
    stream.close()
    folder = Path(lake.quarantine(staged, "v/d", "2024-03-01", "tok", {"success": False}))
    assert folder == tmp_path / "_quarantine" / "v" / "d" / "dt=2024-03-01" / "tok"
    assert json.loads((folder / "validation.json").read_text()) == {"success": False}
    assert pq.read_table(folder / DATA_FILE).num_rows == 2
    assert lake.partitions("v/d") == []


def test_run_tokens_are_safe_and_unique() -> None:
    a, b = run_token("manual__2024-03-01T00:00:00+00:00", 2), run_token("manual__2024-03-01T00:00:00+00:00", 2)
    assert a != b and "/" not in a and ":" not in a and "-try2-" in a


def test_the_rows_a_day_likely_holds_are_its_own_published_rows_else_the_day_befores(tmp_path: Path) -> None:
    from datetime import date

    from vendorflow.pipeline.run import expected_rows

    lake = Lake(str(tmp_path))

    def publish(dt: str, rows: int, account: str = "default") -> None:
        staged = lake.staging_file("v/d", dt, run_token(f"r-{dt}-{account}"))
        stream = ParquetStream(staged, SCHEMA)
        stream.write(batch(0, rows))
        stream.close()
        lake.publish(staged, "v/d", dt, {"rows": rows}, account)

    assert expected_rows(lake, "v/d", date(2024, 3, 2)) is None  # nothing published yet
    publish("2024-03-01", 7)
    assert expected_rows(lake, "v/d", date(2024, 3, 2)) == 7  # a backfill's next day: the day before's
    assert expected_rows(lake, "v/d", date(2024, 3, 3)) is None  # only the day itself and the one before
    publish("2024-03-02", 11)
    assert expected_rows(lake, "v/d", date(2024, 3, 2)) == 11  # a lookback re-extraction: its own
    publish("2024-03-02", 3, account="b")
    assert expected_rows(lake, "v/d", date(2024, 3, 2), "b") == 3  # per account
