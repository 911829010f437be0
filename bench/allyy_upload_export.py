"""Allyy upload files: Parquet partition to CSV and JSON, streamed; rows/s and peak memory against the partition's size
in memory.

Synthetic offer_statistics-like partitions of 500,000 and 2,000,000 rows are
written as the pipeline writes them (zstd), then exported by the upload task's
function in a fresh process per format. The peaks are the export's own: Arrow's
memory pool high-water mark, and how far the resident set grew above its size
before the export (sampled every 20 ms). "table in memory" is what holding the
decoded partition would cost (``pq.read_table(...).nbytes``): the export must
stay below it and grow much more slowly than the partition.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = (500_000, 2_000_000)
PROBE = """
import json, os, sys, threading, time
sys.path[:0] = [{root!r}, {plugins!r}]
from pathlib import Path
import pyarrow as pa, pyarrow.compute, pyarrow.csv, pyarrow.parquet  # loaded before the baseline: code, not data
from vendorflow.pipeline.export import export_partition

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

baseline, peak, done = rss_mb(), [0.0], threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss_mb())
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()
start = time.perf_counter()
rows, size = export_partition(Path({source!r}), Path({out!r}), {fmt!r})
seconds = time.perf_counter() - start
done.set()
arrow_peak_mb = pa.default_memory_pool().max_memory() / 2**20
print(json.dumps({{"rows": rows, "bytes": size, "seconds": seconds, "arrow_peak_mb": arrow_peak_mb,
                   "rss_growth_mb": max(peak[0], rss_mb()) - baseline}}))
"""


def make_partition(path: Path, rows: int) -> int:
    import datetime as dt
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema(
        [
            ("offer_id", pa.int64()),
            ("campaign_id", pa.int64()),
            ("date", pa.date32()),
            ("views", pa.int64()),
            ("clicks", pa.int64()),
            ("money", pa.decimal128(18, 4)),
            ("_extracted_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    writer = pq.ParquetWriter(path, schema, compression="zstd")
    chunk = 128 * 1024
    now = dt.datetime.now(dt.timezone.utc)
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        ids = range(start, start + n)
        writer.write_table(
            pa.table(
                {
                    "offer_id": pa.array(ids, pa.int64()),
                    "campaign_id": pa.array([i // 7 for i in ids], pa.int64()),
                    "date": pa.array([dt.date(2024, 3, 1)] * n, pa.date32()),
                    "views": pa.array([i % 50_000 for i in ids], pa.int64()),
                    "clicks": pa.array([i % 997 for i in ids], pa.int64()),
                    "money": pa.array([Decimal(i % 100_000) / 100 for i in ids], pa.decimal128(18, 4)),
                    "_extracted_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
                },
                schema=schema,
            )
        )
    writer.close()
    return pq.read_table(path).nbytes


def main() -> None:
    for rows in SIZES:
        with tempfile.TemporaryDirectory() as folder:
            source = Path(folder) / "data.parquet"
            table_bytes = make_partition(source, rows)
            print(
                f"partition: {rows:,} rows, {source.stat().st_size / 2**20:.1f} MiB of Parquet, "
                f"{table_bytes / 2**20:.0f} MiB as a table in memory"
            )
            for fmt in ("csv", "json"):
                out = Path(folder) / f"out.{fmt}"
                code = PROBE.format(
                    root=str(ROOT), plugins=str(ROOT / "plugins"), source=str(source), out=str(out), fmt=fmt
                )
                result = json.loads(
                    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
                )
                print(
                    f"  {fmt.upper():>4}: {result['rows']:,} rows in {result['seconds']:.1f} s = "
                    f"{result['rows'] / result['seconds']:,.0f} rows/s, {result['bytes'] / 2**20:.0f} MiB file; "
                    "peak memory: "
                    f"Arrow pool {result['arrow_peak_mb']:.0f} MiB, resident set +{result['rss_growth_mb']:.0f} MiB"
                )
                out.unlink()


if __name__ == "__main__":
    main()
