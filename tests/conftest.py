"""Test session setup: an isolated Airflow home, state directory and data root, and the sandbox.

Airflow reads its configuration when first imported, so the environment is
set here, at import time, before any test module imports ``airflow``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SESSION_DIR = Path(tempfile.mkdtemp(prefix="vendorflow-tests-"))

os.environ.update(
    {
        "AIRFLOW_HOME": str(SESSION_DIR / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{SESSION_DIR / 'airflow' / 'airflow.db'}",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "VENDORFLOW_STATE_DIR": str(SESSION_DIR / "state"),
        "AIRFLOW_VAR_DATA_ROOT": str(SESSION_DIR / "data"),
        "AIRFLOW_VAR_PII_HMAC_KEY": "test-hmac-key-not-a-secret",
        "GX_ANALYTICS_ENABLED": "False",
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "plugins")]),
    }
)
os.environ.pop("VENDORFLOW_REDIS_URL", None)
(SESSION_DIR / "airflow").mkdir(parents=True, exist_ok=True)
for path in (str(PROJECT_ROOT), str(PROJECT_ROOT / "plugins")):
    if path not in sys.path:
        sys.path.insert(0, path)

from include.sandbox.control import Sandbox, running_sandbox  # noqa: E402


@pytest.fixture(autouse=True)
def _secrets_of_this_test_only() -> Iterator[None]:
    """The process-wide secret registry as it was before the test: a token a test registers (some are
    short words) must not mask another test's expected text."""
    from vendorflow.http.redact import forget_secrets, known_secrets

    before = known_secrets()
    yield
    forget_secrets(keep=before)


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Sandbox]:
    """One sandbox process for the session (log under the session directory)."""
    with running_sandbox(log_path=SESSION_DIR / "sandbox.log") as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(sandbox_server: Sandbox) -> Iterator[Sandbox]:
    """The sandbox, reset to its defaults before each test."""
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.clear_faults()


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    monkeypatch.setenv("AIRFLOW_VAR_DATA_ROOT", str(root))
    return root


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private state directory: rate-limit budgets and tokens of this test only."""
    path = tmp_path / "state"
    monkeypatch.setenv("VENDORFLOW_STATE_DIR", str(path))
    return path


def unique_suffix() -> str:
    return "-" + uuid.uuid4().hex[:10]


@pytest.fixture
def connect(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """``connect("recreativ", requests_per_second=50)``: point a vendor's default connection at
    the sandbox with a fresh credential (its own rate budget); returns the connection dict."""
    from include.sandbox.connections import connections

    def make(vendor: str, *, conn_id: str | None = None, **extra: object) -> dict:
        conns = connections(sandbox.base_url, suffix=unique_suffix())
        default_id = f"{vendor}_default"
        conn = dict(conns[default_id])
        conn["extra"] = {**conn.get("extra", {}), **extra}
        monkeypatch.setenv(f"AIRFLOW_CONN_{(conn_id or default_id).upper()}", json.dumps(conn))
        return conn

    return make


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A migrated Airflow metadata database (SQLite) for the session."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
        cwd=PROJECT_ROOT,
    )


POSTGRES_ADMIN_URL = os.environ.get("VENDORFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of its own on the machine's PostgreSQL, dropped at the end of the session."""
    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL.rpartition('@')[2]}: start it (the ledger tests run "
            f"on a real server), or point VENDORFLOW_TEST_POSTGRES_URL at one. ({' '.join(str(exc).split())})"
        )
    name = f"vendorflow_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
