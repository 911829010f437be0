"""``make airflow``: Airflow's own UI wired to a sandbox, on http://localhost:8080, sized for a laptop.

It starts the vendor sandbox, then Airflow's components (api-server,
scheduler, dag-processor, triggerer) with the LocalExecutor on SQLite in
``.airflow/ui/``, apart from the demo's ``.airflow/demo/``, so the demo's runs
never collide with the scheduler's. Four task slots and one API worker keep
it small. The sandbox connections are imported into Airflow's database, so
the Connections page lists them and their Test button works; DAGs start
unpaused (``--paused`` keeps them paused). Data goes to ``data/``, which the
"Vendors" page of the UI shows. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from include.local_env import PROJECT_ROOT, UI_HOME, local_environment, secret_file
from include.sandbox.connections import connections
from include.sandbox.control import running_sandbox

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


@dataclass
class LocalAirflow:
    url: str
    home: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def log(self, component: str) -> Path:
        return self.home / "logs" / f"{component}.log"

    def tails(self, lines: int = 30) -> str:
        parts = []
        for name in self.processes:
            text = self.log(name).read_text(errors="replace").splitlines()[-lines:] if self.log(name).exists() else []
            parts.append(f"--- {name} ---\n" + "\n".join(text))
        return "\n".join(parts)

    def check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"Airflow components exited: {dead}\n{self.tails()}")


def airflow_environment(sandbox_url: str, *, home: Path, port: int, paused: bool, slots: int = 4) -> dict[str, str]:
    env = local_environment(sandbox_url, home=home, connections_in_env=False)
    env.update(
        {
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(slots),  # LocalExecutor workers: one process per slot
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": secret_file(home / "jwt-secret"),
            "AIRFLOW__API__SECRET_KEY": secret_file(home / "api-secret-key"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": str(paused),
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__CORE__LAZY_LOAD_PLUGINS": "False",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",  # the Test button of the Connections page
        }
    )
    return env


def _airflow(env: dict[str, str], *args: str, timeout: float = 600) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode:
        raise RuntimeError(f"airflow {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-3000:]}")


@contextlib.contextmanager
def running_airflow(
    sandbox_url: str,
    *,
    home: Path = UI_HOME,
    port: int = 8080,
    paused: bool = False,
    env_overrides: dict[str, str] | None = None,
    timeout: float = 300,
) -> Iterator[LocalAirflow]:
    """Migrate the database, import the sandbox connections, start every component, wait for the UI."""
    env = {**airflow_environment(sandbox_url, home=home, port=port, paused=paused), **(env_overrides or {})}
    (home / "logs").mkdir(parents=True, exist_ok=True)
    _airflow(env, "db", "migrate")
    conn_file = home / "sandbox-connections.json"
    conn_file.write_text(json.dumps(connections(sandbox_url), indent=1))
    conn_file.chmod(0o600)
    _airflow(env, "connections", "import", "--overwrite", str(conn_file))
    airflow = LocalAirflow(url=f"http://localhost:{port}", home=home, env=env)
    try:
        for component in COMPONENTS:
            log = open(airflow.log(component), "ab")  # noqa: SIM115 - closed with the process
            command = [sys.executable, "-m", "airflow", component]
            if component == "api-server":
                # Bound to this machine: the local UI signs everyone in as admin.
                command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
            airflow.processes[component] = subprocess.Popen(
                command, env=env, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while True:
            airflow.check_alive()
            with contextlib.suppress(requests.RequestException):
                health = requests.get(f"{airflow.url}/api/v2/monitor/health", timeout=5)
                if health.ok and health.json().get("scheduler", {}).get("status") == "healthy":
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"Airflow did not become healthy within {timeout:.0f} s\n{airflow.tails()}")
            time.sleep(1)
        yield airflow
    finally:
        for process in airflow.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in airflow.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("AIRFLOW_PORT", "8080")))
    parser.add_argument("--paused", action="store_true", help="keep new DAGs paused (unpause them in the UI)")
    args = parser.parse_args()
    sandbox_port = int(os.environ.get("SANDBOX_PORT", "8765"))
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the components and the sandbox too, as Ctrl-C does
    with running_sandbox(sandbox_port) as sandbox:
        print(
            f"sandbox on {sandbox.base_url}; starting Airflow in {UI_HOME} (logs in {UI_HOME / 'logs'}) ...", flush=True
        )
        with running_airflow(sandbox.base_url, port=args.port, paused=args.paused) as airflow:
            print(
                f"\nAirflow UI: {airflow.url}  (no login needed locally)\n"
                f"  Dags             every vendorflow DAG, {'paused' if args.paused else 'unpaused'}; trigger one "
                "with the play button\n"
                f"  Vendors          (navigation bar) the datasets, their validation, freshness and actions\n"
                f"  Admin > Connections   the sandbox connections; open one and press Test\n"
                f"Ctrl-C stops Airflow and the sandbox.",
                flush=True,
            )
            try:
                while True:
                    airflow.check_alive()
                    time.sleep(2)
            except KeyboardInterrupt:
                return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
