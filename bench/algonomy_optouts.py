"""Algonomy: 2,000 opt-outs at the sandbox's 100 requests/s: achieved rate over allowed, 429s served;
one process, two sharing the budget, two "hosts" sharing only Redis.

Each process runs the DAG's sending step (``send_pending``: the real hook,
shared budget, retry policy and ledger writes, ``concurrency`` 16) over its
share of the ids, against a sandbox that enforces 100 opt-outs/s per client
over any sliding second and answers after ``BENCH_LATENCY_MS`` (default 80 ms).
With two processes each has its own ledger (two independent senders) and both
share the credential's budget: through one state directory (one machine), or,
as two "hosts", each with its own state directory and the budget in Redis
(``VENDORFLOW_REDIS_URL``). The rate is read from the sandbox's own request log.
Knobs: ``BENCH_OPTOUTS`` (2000), ``BENCH_LATENCY_MS`` (80).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import requests

from bench._hosts import scratch_redis
from include.sandbox.connections import connections
from include.sandbox.control import running_sandbox

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 100.0

WORKER = """
import logging, sys
from datetime import date
sys.path[:0] = {paths!r}
from vendorflow.vendors.algonomy.hook import AlgonomyHook
from vendorflow.ledger import Ledger
from vendorflow.vendors.algonomy.optouts import LEDGER, record_requested, send_pending
ids = [f"{prefix}-{{i:06d}}" for i in range({count})]
ledger = Ledger(LEDGER)
record_requested(ledger, ids, source="bench", run_id="bench", dt=date(2024, 3, 1))
hook = AlgonomyHook()
hook.tokens.get()
summary = send_pending(hook, ledger, progress_every=3600)
print(summary.accepted, len(summary.failed), summary.requests, summary.retries, round(summary.seconds, 3))
"""


def send(
    processes: int,
    total: int,
    sandbox_url: str,
    state_dir: str,
    work: Path,
    redis_url: str | None = None,
    tag: str = "",
) -> tuple[str, list[list[str]]]:
    conn = dict(connections(sandbox_url, suffix="-bench-" + uuid.uuid4().hex[:8])["algonomy_default"])
    env = {
        **os.environ,
        "AIRFLOW_CONN_ALGONOMY_DEFAULT": json.dumps(conn),
        "VENDORFLOW_STATE_DIR": state_dir,
        "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}",
    }
    workers = []
    for p in range(processes):
        code = WORKER.format(
            paths=[str(ROOT), str(ROOT / "plugins")], prefix=f"p{processes}{tag}-{p}", count=total // processes
        )
        ledger = work / f"ledger-{processes}{tag}-{p}.sqlite"
        host_env = {**env, "VENDORFLOW_LEDGER_PATH": str(ledger)}
        if redis_url:  # a separate host: its own state directory, the budget in Redis
            host_env.update(VENDORFLOW_STATE_DIR=f"{state_dir}/host-{p}", VENDORFLOW_REDIS_URL=redis_url)
        workers.append(subprocess.Popen([sys.executable, "-c", code], env=host_env, stdout=subprocess.PIPE, text=True))
    outputs = [w.communicate(timeout=1800)[0].strip().splitlines()[-1].split() for w in workers]
    if any(w.returncode for w in workers):
        raise SystemExit(f"a sender failed: {outputs}")
    return conn["login"], outputs


def measure(sandbox, client_id: str) -> tuple[int, float, int, int]:  # type: ignore[no-untyped-def]
    seen = [r for r in sandbox.requests("algonomy") if r["token"] == client_id and r["method"] == "PUT"]
    times = sorted(r["t"] for r in seen)
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    throttled = sum(1 for r in seen if r["status"] == 429)
    accepted = sum(1 for r in seen if r["status"] == 200)
    return len(seen), rate, throttled, accepted


def main() -> None:
    total = int(os.environ.get("BENCH_OPTOUTS", "2000"))
    latency = int(os.environ.get("BENCH_LATENCY_MS", "80"))
    with tempfile.TemporaryDirectory() as work, running_sandbox() as sandbox, scratch_redis() as redis_url:
        sandbox.configure("algonomy", rate_limit=LIMIT, latency_ms=latency)
        print(f"{total} opt-outs, sandbox limit {LIMIT:g} requests/s per client, {latency} ms per answer")
        print(
            f"{'mode':>22} {'requests':>9} {'accepted':>9} {'achieved/s':>11} {'of allowed':>11} {'429s':>5} "
            f"{'twice':>6}"
        )
        for label, processes, shared, tag in (
            ("1 process", 1, None, ""),
            ("2 processes, 1 host", 2, None, ""),
            ("2 hosts, Redis", 2, redis_url, "h"),
        ):
            client_id, _ = send(
                processes, total, sandbox.base_url, str(Path(work) / f"state-{processes}{tag}"), Path(work), shared, tag
            )
            requests_seen, rate, throttled, accepted = measure(sandbox, client_id)
            record = requests.get(sandbox.url("/_sandbox/algonomy/optouts"), timeout=10).json()
            twice = sum(1 for uid in record["repeated"] if uid.startswith(f"p{processes}{tag}-"))
            print(
                f"{label:>22} {requests_seen:>9} {accepted:>9} {rate:>11.2f} {rate / LIMIT:>10.1%} {throttled:>5} "
                f"{twice:>6}",
                flush=True,
            )


if __name__ == "__main__":
    main()
