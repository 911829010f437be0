"""Bring partitions written before accounts up to the current layout: ``python -m vendorflow.pipeline.upgrade``.

Files published before accounts have no ``account`` column, so a dataset whose
days were written by both versions is not one schema: DuckDB's
``read_parquet('<dataset>/*/*.parquet')`` refuses it, and pandas drops the column.
Each such file is the ``default`` account's (the only account there was), so the
upgrade adds ``account = 'default'`` before ``_extracted_at`` and republishes the
file atomically under its partition's lock, row groups and manifest kept. Running
it again changes nothing. ``--dry-run`` only counts.

Usage: ``python -m vendorflow.pipeline.upgrade [--data-root ROOT] [--dry-run]``
(the data root defaults to the Variable ``data_root``, as for the DAGs).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from vendorflow.accounts import DEFAULT
from vendorflow.pipeline.schema import ACCOUNT, EXTRACTED_AT
from vendorflow.pipeline.storage import DATA_FILE, Lake, run_token


@dataclass
class Upgrade:
    checked: int = 0
    upgraded: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{self.checked} partition files checked, {len(self.upgraded)} given an account column"


def default_files(lake: Lake) -> Iterator[tuple[str, str]]:
    """``(dataset, dt)`` of every default-account file under the data root (underscore folders excluded)."""
    for path in sorted(lake.fs.glob(lake.join("*", "*", "dt=*", DATA_FILE))):
        parts = path.rstrip("/").split("/")
        if parts[-4].startswith("_") or parts[-3].startswith("_"):
            continue
        yield f"{parts[-4]}/{parts[-3]}", parts[-2].removeprefix("dt=")


def with_account(table: pa.Table, account: str = DEFAULT) -> pa.Table:
    """``table`` with a constant ``account`` column before ``_extracted_at`` (last when there is none)."""
    names = table.schema.names
    at = names.index(EXTRACTED_AT) if EXTRACTED_AT in names else len(names)
    column = pa.array([account] * table.num_rows, pa.string())
    return table.add_column(at, pa.field(ACCOUNT, pa.string(), nullable=False), column)


def upgrade(lake: Lake, *, dry_run: bool = False) -> Upgrade:
    outcome = Upgrade()
    for dataset, dt in default_files(lake):
        outcome.checked += 1
        path = lake.data_file(dataset, dt)
        with lake.fs.open(path, "rb") as handle:
            if ACCOUNT in pq.read_schema(handle).names:
                continue
        outcome.upgraded.append(f"{dataset}/dt={dt}")
        if dry_run:
            continue
        with lake.partition_lock(dataset, dt):
            with lake.fs.open(path, "rb") as handle:
                source = pq.ParquetFile(handle)
                if ACCOUNT in source.schema_arrow.names:  # a run republished it meanwhile
                    continue
                metadata = source.schema_arrow.metadata
                staged = lake.staging_file(dataset, dt, run_token("upgrade"))  # same filesystem: an atomic rename
                try:
                    schema = with_account(source.schema_arrow.empty_table()).schema.with_metadata(metadata)
                    with pq.ParquetWriter(staged, schema, compression="zstd", write_statistics=True) as writer:
                        for index in range(source.num_row_groups):
                            group = with_account(source.read_row_group(index)).replace_schema_metadata(metadata)
                            writer.write_table(group, row_group_size=max(group.num_rows, 1))
                        if source.num_row_groups == 0:
                            writer.write_table(schema.empty_table())
                    lake.publish(staged, dataset, dt)
                finally:
                    staged.unlink(missing_ok=True)
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vendorflow.pipeline.upgrade", description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", help="the data root (default: the Variable data_root)")
    parser.add_argument("--dry-run", action="store_true", help="only list the files that need it")
    args = parser.parse_args(argv)
    from vendorflow import settings

    outcome = upgrade(Lake(args.data_root or settings.data_root()), dry_run=args.dry_run)
    for name in outcome.upgraded:
        print(("would upgrade " if args.dry_run else "upgraded ") + name)
    print(outcome.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
