"""Recomendo: 5,000 events sent to the sandbox with realistic latency, events/s against the best the configured
concurrency allows.

One event per request (the documented endpoint; PredictionIO's batch endpoint
is not documented by Recomendo), up to ``concurrency`` in flight, under the
credential's shared budget. The best possible rate is
``min(concurrency / latency, requests_per_second * 0.97)``. Two paths: the hook
alone, and the DAG's path (hook + every outcome recorded in the ledger).
Knobs: ``BENCH_EVENTS`` (5000), ``BENCH_LATENCY_MS`` (60), ``BENCH_CONCURRENCY`` (8),
``BENCH_RPS`` (200).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

from include.sandbox.connections import connections
from include.sandbox.control import running_sandbox

SAFETY = 0.97


def events(n: int, tag: str) -> list[dict]:
    return [
        {
            "event": "lead",
            "entityType": "user",
            "entityId": f"c{i % 500}",
            "targetEntityType": "item",
            "targetEntityId": f"{tag}-o{i}",
            "eventTime": "2024-03-01T10:00:00.000Z",
        }
        for i in range(n)
    ]


def main() -> None:
    n = int(os.environ.get("BENCH_EVENTS", "5000"))
    latency = int(os.environ.get("BENCH_LATENCY_MS", "60"))
    concurrency = int(os.environ.get("BENCH_CONCURRENCY", "8"))
    rps = float(os.environ.get("BENCH_RPS", "200"))
    best = min(concurrency / (latency / 1000), rps * SAFETY)
    with tempfile.TemporaryDirectory() as state, running_sandbox() as sandbox:
        os.environ["VENDORFLOW_STATE_DIR"] = state
        os.environ["VENDORFLOW_LEDGER_PATH"] = str(Path(state) / "ledger.sqlite")
        sandbox.configure(
            "recomendo", latency_ms=latency, rate_limit=rps
        )  # the sandbox refuses anything above the budget
        print(
            f"{n:,} events, {latency} ms per answer, concurrency {concurrency}, budget {rps:g}/s: best possible "
            f"{best:.1f} events/s"
        )
        print(f"{'path':<22} {'seconds':>8} {'events/s':>9} {'of best':>8} {'auth calls':>10} {'429s':>5}")
        from vendorflow.ledger import Ledger
        from vendorflow.progress import Progress
        from vendorflow.vendors.recomendo.events import EventFeed, PlannedEvent
        from vendorflow.vendors.recomendo.hook import RecomendoHook

        for path in ("hook", "hook + ledger"):
            conn = dict(connections(sandbox.base_url, suffix="-bench-" + uuid.uuid4().hex[:8])["recomendo_default"])
            conn["extra"] = {**conn["extra"], "concurrency": concurrency, "requests_per_second": rps}
            os.environ["AIRFLOW_CONN_RECOMENDO_DEFAULT"] = json.dumps(conn)
            hook = RecomendoHook()
            hook.tokens.get()  # the token is fetched once, before the clock starts
            batch = events(n, path)
            started = time.monotonic()
            if path == "hook":
                accepted = sum(o.accepted for o in hook.send_events(batch))
            else:
                planned = [PlannedEvent(f"bench:{i}", str(i), e["entityId"], e) for i, e in enumerate(batch)]
                feed = EventFeed(hook, Ledger("recomendo_events"), "bench", logging.getLogger("bench"))
                counts = feed._send(planned, date(2024, 3, 1), Progress("bench", every=3600))
                accepted = counts["accepted"]
            seconds = time.monotonic() - started
            assert accepted == n, f"{accepted} of {n} accepted"
            seen = [r for r in sandbox.requests("recomendo") if r["path"].endswith("events.json")]
            auths = len(sandbox._call("GET", "/_sandbox/recomendo/auths", params={"client": conn["login"]}))
            throttled = sum(1 for r in seen if r["status"] == 429)
            rate = n / seconds
            print(f"{path:<22} {seconds:>8.1f} {rate:>9.1f} {rate / best:>8.1%} {auths:>10} {throttled:>5}", flush=True)
            sandbox.reset()
            sandbox.configure("recomendo", latency_ms=latency, rate_limit=rps)


if __name__ == "__main__":
    main()
