"""A 30-day leads backfill and a daily run with its 7-day lookback, validation included, against dlt's rest_api source.

Both read the same sandbox, which answers every page after ``BENCH_LATENCY_MS``
(50) and silently caps ``pageSize`` at ``BENCH_PAGE_CAP`` (250); its leads
become customers days after their day (``status_clock``). Each method runs in a
process of its own; wall time is that whole process's (interpreter start and
imports included, as for an Airflow task), peak memory its maximum resident
set, "work" memory that peak less what the process held before its first
request (its imports: for vendorflow Airflow's SDK and Great Expectations), and
requests are counted by the sandbox.

- ``vendorflow``: what Airflow's backfill runs, one day after another in one
  process: the ``footprints/leads`` task path (``run_window``: extraction with
  ``BENCH_CONCURRENCY`` (8) pages in flight, Parquet, Great Expectations
  validation, publish), then at the connection default (4 in flight).
- ``dlt``: dlt's ``rest_api`` source over the whole range (one listing,
  ``startDate``..``endDate``, ``pageSize`` = the cap, to the first empty page),
  normalised and loaded as Parquet by the ``filesystem`` destination. dlt
  validates nothing and knows the cap; it runs from ``.venv-bench``
  (``requirements-bench.txt``), made by ``make bench``.

The daily run is the last day's run a day later, with its 7 days of lookback,
after the backfill: vendorflow re-extracts 8 days and republishes those that
changed; dlt extracts the same 8 days. Knobs: ``BENCH_DAYS`` (30),
``BENCH_LEADS`` (33,518 over the range), ``BENCH_LATENCY_MS``, ``BENCH_PAGE_CAP``,
``BENCH_CONCURRENCY``, ``BENCH_PYTHON_DLT`` (the interpreter with dlt).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from include.sandbox.connections import connections
from include.sandbox.control import Sandbox, running_sandbox

ROOT = Path(__file__).resolve().parents[1]
FIRST = date(2024, 5, 1)

OURS = """
import json, logging, os, resource, sys, time
from datetime import date, timedelta
sys.path[:0] = {paths!r}
logging.basicConfig(level=logging.WARNING)
log = logging.getLogger("bench")
from vendorflow.vendors.footprints.datasets import LEADS
from vendorflow.vendors.footprints.hook import FootprintsHook
from vendorflow.pipeline.window import run_window
from vendorflow.pipeline.validate import _context
_context()  # Great Expectations, imported by the first validation anyway: here, so the floor counts it
floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
hook = FootprintsHook()
days = [date.fromisoformat(d) for d in {days!r}]
started = time.monotonic()
rows = published = 0
for n, day in enumerate(days):
    out = run_window(LEADS, hook=hook, day=day, lookback={lookback}, run_id=f"bench-{{n}}", logger=log)
    rows += sum(r.rows for r in out.results)
    published += len(out.changed)
print(json.dumps({{"rows": rows, "wall": time.monotonic() - started, "published": published, "floor_mb": floor,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""

DLT = """
import json, os, resource, sys, time
import requests
host, key, secret, start, end, cap, out = {host!r}, {key!r}, {secret!r}, {start!r}, {end!r}, {cap}, {out!r}
os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
os.environ["DESTINATION__FILESYSTEM__BUCKET_URL"] = out
import dlt
from dlt.sources.rest_api import rest_api_source
started = time.monotonic()
token = requests.post(host + "/api/token", auth=(key, secret), data={{"grant_type": "client_credentials"}}).json()
source = rest_api_source({{
    "client": {{
        "base_url": host,
        "auth": {{"type": "api_key", "name": "access_token", "api_key": token["access_token"], "location": "query"}},
        "paginator": {{"type": "page_number", "base_page": 1, "page_param": "page", "total_path": None,
                       "stop_after_empty_page": True}},
    }},
    "resources": [{{"name": "leads", "endpoint": {{"path": "api/lead", "data_selector": "$",
                   "params": {{"startDate": start, "endDate": end, "pageSize": cap}}}}}}],
}})
pipeline = dlt.pipeline(pipeline_name="bench_leads_" + str(os.getpid()), destination="filesystem",
                        dataset_name="footprints", pipelines_dir=out + "/_pipelines")
floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
info = pipeline.run(source, loader_file_format="parquet")
rows = pipeline.last_trace.last_normalize_info.row_counts.get("leads", 0)
print(json.dumps({{"rows": rows, "wall": time.monotonic() - started, "published": None, "floor_mb": floor,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def _run(python: str, code: str, env: dict[str, str]) -> dict[str, Any]:
    """One process; its wall time is the whole process's (interpreter, imports and all), as a task's would be."""
    started = time.monotonic()
    done = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - started
    if done.returncode:
        raise SystemExit(f"a benchmark run failed:\n{done.stderr[-4000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall": wall}


def _lead_requests(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.requests("footprints") if r.get("path", "").endswith("/api/lead"))


def _dlt_python() -> str:
    python = os.environ.get("BENCH_PYTHON_DLT") or str(ROOT / ".venv-bench" / "bin" / "python")
    if not Path(python).exists():
        raise SystemExit(
            f"dlt's interpreter is not at {python}: `make bench` makes .venv-bench from requirements-bench.txt "
            "(or set BENCH_PYTHON_DLT)"
        )
    return python


def main() -> None:
    days = int(os.environ.get("BENCH_DAYS", "30"))
    leads = int(os.environ.get("BENCH_LEADS", "33518"))
    latency = int(os.environ.get("BENCH_LATENCY_MS", "50"))
    cap = int(os.environ.get("BENCH_PAGE_CAP", "250"))
    concurrency = int(os.environ.get("BENCH_CONCURRENCY", "8"))
    dlt_python = _dlt_python()
    backfill = [FIRST + timedelta(days=n) for n in range(days)]
    per_day = {d.isoformat(): leads // days + (1 if n < leads % days else 0) for n, d in enumerate(backfill)}
    daily_day = backfill[-1] + timedelta(days=1)
    per_day[daily_day.isoformat()] = leads // days
    paths = [str(ROOT), str(ROOT / "plugins")]
    with tempfile.TemporaryDirectory() as work, running_sandbox() as sandbox:
        sandbox.configure(
            "footprints",
            leads_by_day=per_day,
            latency_ms=latency,
            page_size_cap=cap,
            rate_limit=None,
            status_clock=f"{backfill[-1]}T23:59:59Z",
        )
        print(
            f"Footprints sandbox: {latency} ms per page, pageSize silently capped at {cap}; {leads:,} leads over "
            f"{days} days ({backfill[0]}..{backfill[-1]}); then the daily run of {daily_day} with 7 days of lookback"
        )
        print(
            f"{'run':<9} {'method':<16} {'leads':>7} {'requests':>8} {'wall s':>7} {'peak MB':>8} {'work MB':>8} "
            f"{'vs dlt':>16}"
        )

        def conn_env(extra: dict[str, Any], lake: str) -> tuple[dict[str, Any], dict[str, str]]:
            conn = dict(connections(sandbox.base_url, suffix="-bench-" + uuid.uuid4().hex[:8])["footprints_default"])
            conn["extra"] = {**conn["extra"], "page_size": cap, "requests_per_second": 10_000, **extra}
            env = {
                **os.environ,
                "AIRFLOW_CONN_FOOTPRINTS_DEFAULT": json.dumps(conn),
                "AIRFLOW_VAR_DATA_ROOT": lake,
                "AIRFLOW_VAR_PII_HMAC_KEY": "bench-key",
                "PYTHONPATH": os.pathsep.join(paths),
                "VENDORFLOW_STATE_DIR": str(Path(work) / "state"),
            }
            return conn, env

        def measure(python: str, code: str, env: dict[str, str]) -> dict[str, Any]:
            before = _lead_requests(sandbox)
            result = _run(python, code, env)
            result["requests"] = _lead_requests(sandbox) - before
            return result

        def show(run: str, method: str, result: dict[str, Any], peer: dict[str, Any] | None) -> None:
            ratio = (
                f"{result['wall'] / peer['wall']:.2f}x / {result['peak_mb'] / peer['peak_mb']:.2f}x mem" if peer else ""
            )
            print(
                f"{run:<9} {method:<16} {result['rows']:>7,} {result['requests']:>8,} {result['wall']:>7.1f} "
                f"{result['peak_mb']:>8.0f} {result['peak_mb'] - result['floor_mb']:>8.0f} {ratio:>16}",
                flush=True,
            )

        results: dict[str, dict[str, Any]] = {}
        for run, window in (
            ("backfill", backfill),
            ("daily", [daily_day - timedelta(days=n) for n in range(7, -1, -1)]),
        ):
            if run == "daily":  # a day later: leads of the lookback have become customers meanwhile
                sandbox.configure("footprints", status_clock=f"{daily_day}T23:59:59Z")
            conn, env = conn_env({}, str(Path(work) / "dlt" / run))
            peer = measure(
                dlt_python,
                DLT.format(
                    host=conn["host"],
                    key=conn["login"],
                    secret=conn["password"],
                    start=window[0].isoformat(),
                    end=window[-1].isoformat(),
                    cap=cap,
                    out=str(Path(work) / "dlt" / run),
                ),  # fmt: skip
                {k: v for k, v in env.items() if k != "PYTHONPATH"},
            )
            results[f"{run} dlt"] = peer
            show(run, "dlt rest_api", peer, None)
            for label, extra in ((f"vendorflow {concurrency}", {"concurrency": concurrency}), ("vendorflow dflt", {})):
                lake = str(Path(work) / "lake" / label.replace(" ", "-"))  # the daily run finds its backfill's
                _, env = conn_env(extra, lake)
                if run == "backfill":
                    code = OURS.format(paths=paths, days=[d.isoformat() for d in window], lookback=0)
                else:
                    code = OURS.format(paths=paths, days=[daily_day.isoformat()], lookback=7)
                result = measure(sys.executable, code, env)
                results[f"{run} {label}"] = result
                show(run, label, result, peer)
                if result["rows"] != peer["rows"]:
                    raise SystemExit(f"{label} read {result['rows']:,} leads and dlt {peer['rows']:,}")
        best = results[f"backfill vendorflow {concurrency}"]
        peer = results["backfill dlt"]
        wall, memory = best["wall"] / peer["wall"], best["peak_mb"] / peer["peak_mb"]
        work = (best["peak_mb"] - best["floor_mb"]) / (peer["peak_mb"] - peer["floor_mb"])
        extra = best["requests"] - peer["requests"]
        republished = results[f"daily vendorflow {concurrency}"]["published"]
        print(
            f"30-day backfill: vendorflow at {concurrency} in flight takes {wall:.2f}x dlt's wall time and "
            f"{memory:.2f}x its peak memory ({work:.2f}x its memory above what the process held before its first "
            f"request), with {extra:+,} requests (validation included for vendorflow only); "
            f"daily run: {republished} of 8 days republished"
        )


if __name__ == "__main__":
    main()
