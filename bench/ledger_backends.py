"""Ledger writes per second on PostgreSQL (``VENDORFLOW_LEDGER_URL``) against SQLite, one process and four at once.

Each writer puts ``BENCH_LEDGER_WRITES`` (default 2,000) entries one by one, each committed before the next
(what the Recomendo and Algonomy senders do per outcome), then 200 compare-and-set writes. SQLite is the
embedded default (WAL, synchronous=FULL); PostgreSQL is the machine's, in a database of its own.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench._hosts import scratch_postgres

ROOT = Path(__file__).resolve().parents[1]


def _writer(where: dict[str, Any], name: str, worker: int, count: int, out: Any) -> None:
    sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
    from vendorflow.ledger import Ledger

    ledger = Ledger(name, Path(where["path"])) if "path" in where else Ledger(name, url=where["url"])
    started = time.perf_counter()
    for n in range(count):
        ledger.put(f"w{worker}-{n}", "sent", {"attempts": 1, "answer": {"ok": True}})
    for n in range(200):
        ledger.put(f"w{worker}-{n}", "accepted", {"attempts": 1}, only_if="sent")
    out.put((count + 200, time.perf_counter() - started))


def run(where: dict[str, Any], writers: int, count: int) -> tuple[float, float]:
    name = f"bench_{writers}_{os.getpid()}_{int(time.time() * 1000) % 100000}"
    queue: Any = multiprocessing.Queue()
    processes = [multiprocessing.Process(target=_writer, args=(where, name, w, count, queue)) for w in range(writers)]
    started = time.perf_counter()
    for p in processes:
        p.start()
    results = [queue.get(timeout=1800) for _ in processes]
    for p in processes:
        p.join()
    elapsed = time.perf_counter() - started
    writes = sum(r[0] for r in results)
    return writes / elapsed, writes


def main() -> None:
    count = int(os.environ.get("BENCH_LEDGER_WRITES", "2000"))
    print(f"{count:,} writes and 200 compare-and-sets per writer, each committed alone")
    print(f"{'backend':>10} {'writers':>8} {'writes':>8} {'writes/s':>10}")
    with tempfile.TemporaryDirectory() as work, scratch_postgres() as url:
        rates = {}
        for backend, where in (("sqlite", {"path": f"{work}/ledger.sqlite"}), ("postgresql", {"url": url})):
            for writers in (1, 4):
                rate, writes = run(where, writers, count)
                rates[(backend, writers)] = rate
                print(f"{backend:>10} {writers:>8} {writes:>8,} {rate:>10,.0f}", flush=True)
        for writers in (1, 4):
            print(
                f"postgresql / sqlite, {writers} writer(s): "
                f"{rates[('postgresql', writers)] / rates[('sqlite', writers)]:.2f}x"
            )


if __name__ == "__main__":
    main()
