"""An Airflow cluster of "hosts" on this machine: the CeleryExecutor on the machine's PostgreSQL and Redis.

Each process (api-server, scheduler, dag-processor, triggerer, and each Celery
worker) runs with its own ``AIRFLOW_HOME``, ``HOME``, ``TMPDIR`` and
``VENDORFLOW_STATE_DIR``, as separate hosts would: they share only what a
real deployment shares, the Airflow metadata database, the Celery broker, the
vendorflow ledger (``VENDORFLOW_LEDGER_URL``), the vendorflow Redis
(``VENDORFLOW_REDIS_URL``) and the data root. Databases and Redis keys are
the cluster's own and are dropped when it stops; nothing that is already
running is started.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from include.sandbox.control import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
POSTGRES = os.environ.get("VENDORFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("VENDORFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379")


def _check_services() -> None:
    import psycopg
    import redis

    try:
        psycopg.connect(POSTGRES, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"PostgreSQL is not reachable at {POSTGRES.rpartition('@')[2]}: start it (the multi-host test runs on a "
            f"real server), or point VENDORFLOW_TEST_POSTGRES_URL at one ({exc})"
        ) from None
    try:
        redis.Redis.from_url(REDIS, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        raise RuntimeError(
            f"Redis is not reachable at {REDIS}: start it, or point VENDORFLOW_TEST_REDIS_URL at one ({exc})"
        ) from None


@dataclass
class Cluster:
    root: Path
    api_url: str
    data_root: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def http(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(method, f"{self.api_url}{path}", timeout=60, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: HTTP {response.status_code}: {response.text[:500]}")
        return response.json()

    def trigger(self, dag_id: str, run_id: str, logical_date: str | None, conf: dict[str, Any] | None = None) -> str:
        self.http(
            "POST",
            f"/api/v2/dags/{dag_id}/dagRuns",
            json={"dag_run_id": run_id, "logical_date": logical_date, "conf": conf or {}},
        )
        return run_id

    def unpause(self, dag_id: str) -> None:
        self.http("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def runs_of(self, dag_id: str) -> list[tuple[str, str]]:
        found = self.http("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]
        return [(dag_id, r["dag_run_id"]) for r in found]

    def state(self, dag_id: str, run_id: str) -> str:
        return str(self.http("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def wait(self, runs: list[tuple[str, str]], timeout: float) -> dict[tuple[str, str], str]:
        """Wait until every (dag_id, run_id) has finished; returns their states."""
        deadline = time.monotonic() + timeout
        states: dict[tuple[str, str], str] = {}
        while time.monotonic() < deadline:
            states = {run: self.state(*run) for run in runs}
            if all(s in ("success", "failed") for s in states.values()):
                return states
            self.check_alive()
            time.sleep(2)
        raise AssertionError(f"runs not finished within {timeout:.0f} s: {states}\n{self.tails()}")

    def check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        if dead:
            raise AssertionError(f"cluster processes exited: {dead}\n{self.tails()}")

    def tails(self, lines: int = 25) -> str:
        parts = []
        for name in self.processes:
            log = self.root / name / "process.log"
            text = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
            parts.append(f"--- {name} ---\n" + "\n".join(text))
        return "\n".join(parts)

    def task_hosts(self, dag_id: str, run_id: str) -> dict[str, str]:
        """Which worker ran each task instance (Airflow's own record)."""
        found = self.http("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti.get("hostname") or "" for ti in found}


def _start(cluster: Cluster, name: str, command: list[str], extra_env: dict[str, str] | None = None) -> None:
    home = cluster.root / name
    for sub in ("home", "tmp", "state", "airflow"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env = {
        **cluster.env,
        "HOME": str(home / "home"),
        "TMPDIR": str(home / "tmp"),
        "AIRFLOW_HOME": str(home / "airflow"),
        "VENDORFLOW_STATE_DIR": str(home / "state"),
        **(extra_env or {}),
    }
    log = open(home / "process.log", "ab")  # noqa: SIM115 - closed with the process
    cluster.processes[name] = subprocess.Popen(
        [sys.executable, "-m", "airflow", *command],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@contextlib.contextmanager
def running_cluster(
    root: Path,
    *,
    connections: dict[str, str],
    workers: int = 2,
    concurrency: int = 4,
    extra_env: dict[str, str] | None = None,
    timeout: float = 240,
) -> Iterator[Cluster]:
    import psycopg
    import redis

    _check_services()
    suffix = uuid.uuid4().hex[:10]
    airflow_db, ledger_db = f"vf_airflow_{suffix}", f"vf_ledger_{suffix}"
    admin = psycopg.connect(POSTGRES, autocommit=True)
    admin.execute(f'CREATE DATABASE "{airflow_db}"')
    admin.execute(f'CREATE DATABASE "{ledger_db}"')
    base = POSTGRES.rsplit("/", 1)[0]
    broker_db, shared_db = 10 + int(suffix[:2], 16) % 3, 13 + int(suffix[2:4], 16) % 3
    api_port = free_port()
    data_root = root / "data"
    data_root.mkdir(parents=True, exist_ok=True)
    sql = base.replace("postgresql://", "postgresql+psycopg://")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VENDORFLOW_", "AIRFLOW_CONN_"))}
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{sql}/{airflow_db}",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": f"{sql.replace('+psycopg', '+psycopg_async')}/{airflow_db}",
            "AIRFLOW__CELERY__BROKER_URL": f"{REDIS}/{broker_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{sql}/{airflow_db}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(concurrency),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",  # a test unpauses the DAGs it runs
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_VAR_DATA_ROOT": str(data_root),
            "AIRFLOW_VAR_PII_HMAC_KEY": "cluster-test-key",
            "VENDORFLOW_LEDGER_URL": f"{base}/{ledger_db}",
            "VENDORFLOW_REDIS_URL": f"{REDIS}/{shared_db}",
            "GX_ANALYTICS_ENABLED": "False",
            "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "plugins")]),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            **connections,
            **(extra_env or {}),
        }
    )
    for db in (broker_db, shared_db):
        redis.Redis.from_url(f"{REDIS}/{db}").flushdb()
    cluster = Cluster(root=root, api_url=f"http://127.0.0.1:{api_port}", data_root=data_root, env=env)
    try:
        migrate_home = root / "migrate"
        migrate_home.mkdir(parents=True, exist_ok=True)
        migrated = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            cwd=PROJECT_ROOT,
            env={**env, "AIRFLOW_HOME": str(migrate_home)},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if migrated.returncode:
            raise AssertionError(f"airflow db migrate failed:\n{(migrated.stdout + migrated.stderr)[-3000:]}")
        _start(cluster, "api-server", ["api-server", "--port", str(api_port), "--host", "127.0.0.1", "--workers", "1"])
        _start(cluster, "scheduler", ["scheduler"])
        _start(cluster, "dag-processor", ["dag-processor"])
        _start(cluster, "triggerer", ["triggerer"])
        for number in range(1, workers + 1):
            _start(
                cluster,
                f"worker-{number}",
                [
                    "celery",
                    "worker",
                    "--celery-hostname",
                    f"worker-{number}@%h",
                    "--skip-serve-logs",
                    "--without-gossip",
                    "--without-mingle",
                ],
            )
        deadline = time.monotonic() + timeout
        while True:
            cluster.check_alive()
            try:
                dags = cluster.http("GET", "/api/v2/dags", params={"limit": 100})
                if dags["total_entries"] >= len(list((PROJECT_ROOT / "dags").glob("*.py"))):
                    break
            except (requests.RequestException, RuntimeError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the cluster did not come up within {timeout:.0f} s\n{cluster.tails()}")
            time.sleep(2)
        errors = cluster.http("GET", "/api/v2/importErrors")
        assert errors["total_entries"] == 0, json.dumps(errors)[:2000]
        yield cluster
    finally:
        for process in cluster.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 15)
        for process in cluster.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, 9)
        for db in (broker_db, shared_db):
            with contextlib.suppress(redis.RedisError):
                redis.Redis.from_url(f"{REDIS}/{db}").flushdb()
        for db in (airflow_db, ledger_db):
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.close()
