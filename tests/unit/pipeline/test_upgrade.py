"""Partitions written before accounts get their account column, once, manifest and rows kept."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from include.demo import report
from vendorflow.pipeline.storage import MANIFEST_KEY, Lake
from vendorflow.pipeline.upgrade import main, upgrade

MANIFEST = {"dataset": "v/d", "dt": "2024-03-01", "rows": 2, "validation": "3/3 expectations passed"}


def old_file(root: Path, dt: str, values: list[int]) -> Path:
    """A partition as published before accounts: no account column, the manifest in the footer."""
    folder = root / "v" / "d" / f"dt={dt}"
    folder.mkdir(parents=True)
    now = datetime(2024, 3, 2, tzinfo=timezone.utc)
    table = pa.table({"n": values, "_extracted_at": pa.array([now] * len(values), pa.timestamp("us", tz="UTC"))})
    manifest = {**MANIFEST, "dt": dt, "rows": len(values)}
    table = table.replace_schema_metadata({MANIFEST_KEY: json.dumps(manifest).encode()})
    pq.write_table(table, folder / "data.parquet")
    return folder / "data.parquet"


def test_old_files_get_the_default_account_and_keep_rows_and_manifest(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    old_file(tmp_path, "2024-03-01", [1, 2])
    old_file(tmp_path, "2024-03-02", [3])
    lake = Lake(str(tmp_path))
    assert main(["--data-root", str(tmp_path), "--dry-run"]) == 0
    assert "would upgrade v/d/dt=2024-03-01" in capsys.readouterr().out
    assert "account" not in pq.read_schema(tmp_path / "v/d/dt=2024-03-01/data.parquet").names

    outcome = upgrade(lake)
    assert outcome.upgraded == ["v/d/dt=2024-03-01", "v/d/dt=2024-03-02"]
    table = pq.read_table(tmp_path / "v/d/dt=2024-03-01/data.parquet")
    assert table.schema.names == ["n", "account", "_extracted_at"]
    assert table.column("account").to_pylist() == ["default", "default"]
    assert lake.read_manifest("v/d", "2024-03-01")["rows"] == 2
    rows = duckdb.sql(
        f"select account, n, dt from read_parquet('{tmp_path}/v/d/*/*.parquet', hive_partitioning=true) order by n"
    ).fetchall()
    assert [(a, n) for a, n, _ in rows] == [("default", 1), ("default", 2), ("default", 3)]
    assert upgrade(lake).upgraded == [], "a second run changes nothing"
    assert not list((tmp_path / "_staging").rglob("*.parquet"))
    assert any(line.startswith("v/d ") and "dt=2024-03-02" in line for line in report(tmp_path))
