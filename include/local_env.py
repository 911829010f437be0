"""The environment that runs this project's Airflow locally (demo, ``make airflow``) against the sandbox."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from include.sandbox.connections import environment

PROJECT_ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_HOME = PROJECT_ROOT / ".airflow"  # what the demo and `make airflow` share: state, keys, logs
DEMO_HOME = AIRFLOW_HOME / "demo"  # the demo's own Airflow (its runs never collide with the scheduler's)
UI_HOME = AIRFLOW_HOME / "ui"  # `make airflow`'s Airflow
DATA_ROOT = PROJECT_ROOT / "data"


def secret_file(path: Path) -> str:
    """A random secret made once and kept in ``path`` (mode 0600, under .airflow/, never committed)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def local_environment(sandbox_url: str, *, home: Path = DEMO_HOME, connections_in_env: bool = True) -> dict[str, str]:
    """Airflow on SQLite in ``home``, data in ``data/``, vendorflow state in ``.airflow/vendorflow-state``.

    ``connections_in_env`` gives the sandbox connections as ``AIRFLOW_CONN_*`` variables; without
    it the caller imports them into the metadata database (so the Connections page lists them).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW_VAR_DATA_ROOT": env.get("AIRFLOW_VAR_DATA_ROOT", str(DATA_ROOT)),
            "AIRFLOW_VAR_PII_HMAC_KEY": env.get("AIRFLOW_VAR_PII_HMAC_KEY")
            or secret_file(AIRFLOW_HOME / "demo-pii-hmac-key"),
            "VENDORFLOW_STATE_DIR": str(AIRFLOW_HOME / "vendorflow-state"),
            "GX_ANALYTICS_ENABLED": "False",
            "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "plugins")]),
            # `airflow standalone` starts its components as `airflow ...` commands: the virtualenv's.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        }
    )
    if connections_in_env:
        env.update(environment(sandbox_url))
    home.mkdir(parents=True, exist_ok=True)
    return env
