"""Recreativ ad statistics for 200 campaigns at the sandbox's 5 requests/s: achieved rate over allowed,
429s served; one process, two at once, two "hosts" sharing only Redis.

Each extraction runs in its own process (``recreativ/offer_statistics`` extractor
with the real hook, budget and retry policy) against a sandbox that enforces 5
requests/s per token over any sliding second and answers after ``BENCH_LATENCY_MS``
(default 80 ms). Two processes share one state directory (one machine); two
"hosts" each have their own and share the budget through Redis
(``VENDORFLOW_REDIS_URL``), as workers on two machines would. The rate is read
from the sandbox's own request log.
Knobs: ``BENCH_CAMPAIGNS`` (200), ``BENCH_LATENCY_MS`` (80).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from bench._hosts import scratch_redis
from include.sandbox.connections import connections
from include.sandbox.control import running_sandbox

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 5.0

WORKER = """
import logging, sys, time
from datetime import date
sys.path[:0] = {paths!r}
from vendorflow.vendors.recreativ.datasets import extract_offer_statistics
from vendorflow.datasets.spec import ExtractContext
from vendorflow.vendors.recreativ.hook import RecreativHook
from vendorflow.progress import Progress
hook = RecreativHook()
ctx = ExtractContext(hook=hook, dt=date(2024, 3, 1), params={{}}, progress=Progress("bench", every=3600))
rows = sum(len(page) for page in extract_offer_statistics(ctx))
print(rows, hook.client.requests_sent, hook.client.retries)
"""


def extract(processes: int, sandbox_url: str, state_dir: str, redis_url: str | None = None) -> dict[str, float]:
    conn = dict(connections(sandbox_url, suffix="-bench-" + uuid.uuid4().hex[:8])["recreativ_default"])
    env = {
        **os.environ,
        "AIRFLOW_CONN_RECREATIV_DEFAULT": json.dumps(conn),
        "VENDORFLOW_STATE_DIR": state_dir,
        "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}",
    }
    code = WORKER.format(paths=[str(ROOT), str(ROOT / "plugins")])
    envs = [env] * processes
    if redis_url:  # separate hosts: a state directory each, the budget in Redis
        envs = [
            {**env, "VENDORFLOW_STATE_DIR": f"{state_dir}/host-{n}", "VENDORFLOW_REDIS_URL": redis_url}
            for n in range(processes)
        ]
    workers = [subprocess.Popen([sys.executable, "-c", code], env=e, stdout=subprocess.PIPE, text=True) for e in envs]
    outputs = [w.communicate(timeout=1800)[0].strip().splitlines()[-1].split() for w in workers]
    if any(w.returncode for w in workers):
        raise SystemExit(f"an extraction failed: {outputs}")
    return {"rows": sum(int(o[0]) for o in outputs), "token": conn["password"]}


def measure(sandbox, token: str) -> tuple[int, float, int]:  # type: ignore[no-untyped-def]
    seen = [r for r in sandbox.requests("recreativ") if r["token"] == token]
    times = sorted(r["t"] for r in seen)
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    throttled = sum(1 for r in seen if r["status"] == 429)
    return len(seen), rate, throttled


def main() -> None:
    campaigns = int(os.environ.get("BENCH_CAMPAIGNS", "200"))
    latency = int(os.environ.get("BENCH_LATENCY_MS", "80"))
    with tempfile.TemporaryDirectory() as state_dir, running_sandbox() as sandbox, scratch_redis() as redis_url:
        sandbox.configure("recreativ", campaigns=campaigns, rate_limit=LIMIT, latency_ms=latency)
        print(f"{campaigns} campaigns, sandbox limit {LIMIT:g} requests/s per token, {latency} ms per answer")
        print(f"{'mode':>22} {'requests':>9} {'rows':>7} {'achieved/s':>11} {'of allowed':>11} {'429s':>5}")
        for label, processes, shared in (
            ("1 process", 1, None),
            ("2 processes, 1 host", 2, None),
            ("2 hosts, Redis", 2, redis_url),
        ):
            result = extract(processes, sandbox.base_url, state_dir, shared)
            requests_seen, rate, throttled = measure(sandbox, str(result["token"]))
            print(
                f"{label:>22} {requests_seen:>9} {int(result['rows']):>7} {rate:>11.3f} {rate / LIMIT:>10.1%} "
                f"{throttled:>5}",
                flush=True,
            )


if __name__ == "__main__":
    main()
