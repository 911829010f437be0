"""``make demo``: start the sandbox, run every pipeline through Airflow for one date, report what was written.

Each DAG runs with ``airflow dags test`` (the real scheduler-less runner, on
SQLite); asset-triggered DAGs run after the DAGs that feed them. The report
lists every dataset partition with its rows and validation status, anything
quarantined, and where the Data Docs are. Logs go to ``.airflow/demo-logs/``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from pathlib import Path
from typing import Any

from include.local_env import AIRFLOW_HOME, PROJECT_ROOT, local_environment
from include.sandbox.control import running_sandbox

# (dag_id, conf) in the order they run: producers before the DAGs their assets trigger.
# A DAG runs when its file ``dags/<dag_id>.py`` exists.
DEMO_RUNS: list[tuple[str, dict[str, Any] | None]] = [
    ("recreativ_statistics", None),
    ("footprints_leads", None),
    ("footprints_loyalty", None),
    ("recomendo_usage", None),
    ("recomendo_training", None),
    ("allyy_models", None),
    ("allyy_upload", {"partitions": ["recreativ/campaign_statistics", "recreativ/offer_statistics"]}),
    ("algonomy_optout", {"user_ids": ["demo-user-1", "demo-user-2", "demo-user-3"]}),
]


def installed_runs() -> list[tuple[str, dict[str, Any] | None]]:
    return [(dag_id, conf) for dag_id, conf in DEMO_RUNS if (PROJECT_ROOT / "dags" / f"{dag_id}.py").exists()]


_STATE = re.compile(r"DagRun Finished: .*?state=(\w+)")


# DAGs scheduled by the hour: their run for a day is its last hour, not the next day's.
HOURLY = {"algonomy_optout"}


def logical_date(dag_id: str, day: date) -> str:
    """The logical date of a manual run that covers ``day``: Airflow puts a manual run in the last data interval
    complete before its logical date, and vendorflow writes that interval's start day. For the daily DAGs (and
    those triggered by assets) that is late on the next day; for the hourly one, late on the day itself."""
    moment = datetime.combine(day if dag_id in HOURLY else day + timedelta(days=1), dtime(23), tzinfo=timezone.utc)
    return moment.isoformat()


def run_dag(
    dag_id: str, day: date, conf: dict[str, Any] | None, env: dict[str, str], log_dir: Path
) -> tuple[str, float]:
    command = [sys.executable, "-m", "airflow", "dags", "test", dag_id, logical_date(dag_id, day)]
    if conf:
        command += ["-c", json.dumps(conf)]
    started = time.monotonic()
    log_path = log_dir / f"{dag_id}.log"
    with open(log_path, "w") as log:
        result = subprocess.run(command, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT)
    text = log_path.read_text(errors="replace")
    states = _STATE.findall(text)
    state = states[-1] if states else ("failed" if result.returncode else "unknown")
    return state, time.monotonic() - started


def report(data_root: Path) -> list[str]:
    """A table of every published partition, then quarantined batches and the Data Docs location."""
    lines = [f"{'dataset':<36} {'partition':<14} {'rows':>9}  validation"]
    lines.append("-" * len(lines[0]) + "-" * 12)
    from vendorflow.pipeline.storage import Lake

    lake = Lake(str(data_root))
    drifted = []
    for day_path in sorted(data_root.glob("*/*/dt=*")):
        if day_path.parts[-3].startswith("_"):
            continue
        key, dt = "/".join(day_path.parts[-3:-1]), day_path.name.removeprefix("dt=")
        for account in lake.accounts(key, dt):  # one account, default, unless VENDORFLOW_ACCOUNTS names more
            manifest = lake.read_manifest(key, dt, account)
            if manifest is None:
                continue
            shown = manifest["dataset"] + ("" if account == "default" else f" [{account}]")
            if manifest.get("schema_drift"):
                drifted.append(f"  {shown} dt={dt}: {manifest['schema_drift']}")
            lines.append(f"{shown:<36} {'dt=' + manifest['dt']:<14} {manifest['rows']:>9,}  {manifest['validation']}")
    if drifted:
        lines.append("")
        lines.append(
            "Schema drift (fields the vendor sent that no column maps, or declared fields it stopped sending):"
        )
        lines.extend(drifted)
    quarantined = sorted(data_root.glob("_quarantine/*/*/dt=*/*/validation.json"))
    if quarantined:
        lines.append("")
        lines.append("Quarantined (failed validation, not published):")
        for path in quarantined:
            lines.append(f"  {path.parent.relative_to(data_root)}")
    docs = data_root / "_gx" / "data_docs" / "index.html"
    lines.append("")
    lines.append(f"Data root:  {data_root}")
    lines.append(f"Data Docs:  {docs.as_uri() if docs.exists() else '(not built)'}")
    lines.append("In Airflow: make airflow, then http://localhost:8080 > Vendors (datasets, freshness, actions)")
    files = f"{data_root}/recreativ/offer_statistics/*/*.parquet"
    query = f"select * from read_parquet('{files}', hive_partitioning=true) limit 5"
    lines.append(f'Read it:    .venv/bin/python -c "import duckdb; duckdb.sql(\\"{query}\\").show()"')
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--date", type=date.fromisoformat, default=date.today() - timedelta(days=1))
    parser.add_argument("--port", type=int, default=0, help="sandbox port (default: any free port)")
    parser.add_argument("--only", nargs="*", help="run only these DAG ids")
    args = parser.parse_args()

    log_dir = AIRFLOW_HOME / "demo-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"vendorflow demo for {args.date} (logs in {log_dir})", flush=True)
    with running_sandbox(args.port or None, log_path=log_dir / "sandbox.log") as sandbox:
        env = local_environment(sandbox.base_url)
        print(f"  sandbox          {sandbox.base_url}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=env,
            cwd=PROJECT_ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        failures = 0
        for dag_id, conf in installed_runs():
            if args.only and dag_id not in args.only:
                continue
            print(f"  {dag_id:<24} running ...", end="", flush=True)
            state, seconds = run_dag(dag_id, args.date, conf, env, log_dir)
            print(f"\r  {dag_id:<24} {state} in {seconds:.0f} s" + " " * 10, flush=True)
            failures += state != "success"
    print()
    print("\n".join(report(Path(env["AIRFLOW_VAR_DATA_ROOT"]))))
    if failures:
        print(f"\n{failures} DAG run(s) did not succeed: see {log_dir}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
