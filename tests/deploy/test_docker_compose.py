"""docker-compose.yaml and the Dockerfile: the structure of Airflow 3's official Celery deployment.

No Docker engine runs here, so this checks the file rather than starting it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_the_official_services_are_all_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "redis", "airflow-init", *AIRFLOW_SERVICES} <= set(services)
    for name, command in AIRFLOW_SERVICES.items():
        assert services[name]["command"] == command, name
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
        assert services[name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    assert services["airflow-apiserver"]["ports"] == ["8080:8080"]
    assert services["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"


def test_celery_postgres_and_redis_are_wired(compose: dict[str, Any]) -> None:
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:airflow@postgres/")
    assert (
        env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        and "@redis:6379/0" in env["AIRFLOW__CELERY__BROKER_URL"]
    )
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"


def test_every_airflow_container_runs_this_project(compose: dict[str, Any]) -> None:
    for name in (*AIRFLOW_SERVICES, "airflow-init"):
        service = compose["services"][name]
        assert service["build"]["context"] == "${AIRFLOW_PROJ_DIR:-.}"
        mounts = {target: source for source, target in (m.rsplit(":", 1) for m in service["volumes"])}
        assert mounts["/opt/airflow/project"] == "${AIRFLOW_PROJ_DIR:-.}"  # the project, mounted whole
        env = service["environment"]
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/project/dags"
        assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/opt/airflow/project/plugins"
        assert "/opt/airflow/project/plugins" in env["PYTHONPATH"].split(":")
        # Every worker shares one budget and token cache per credential, and one ledger, not one per container;
        # the state directory is then each container's own (no shared volume).
        assert env["VENDORFLOW_REDIS_URL"] == "redis://redis:6379/1"
        assert env["VENDORFLOW_LEDGER_URL"] == "postgresql://airflow:airflow@postgres/vendorflow"
        assert env["VENDORFLOW_STATE_DIR"] not in mounts


def test_airflow_init_creates_the_vendorflow_ledger_database(compose: dict[str, Any]) -> None:
    script = "\n".join(compose["services"]["airflow-init"]["command"])
    assert "CREATE DATABASE vendorflow" in script and "datname = 'vendorflow'" in script


def test_no_secret_is_written_in_the_file() -> None:
    text = (ROOT / "docker-compose.yaml").read_text()
    assert not re.search(r"AIRFLOW_CONN_\w+\s*:", text)
    assert "PII_HMAC_KEY:" not in text


def test_the_image_installs_the_pinned_requirements_and_the_provider() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM \$\{AIRFLOW_IMAGE\}", dockerfile, re.M)
    assert "ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11" in dockerfile
    assert "pip install --no-cache-dir -r /opt/airflow/project/requirements.txt" in dockerfile
    assert "pip install --no-cache-dir --no-deps /opt/airflow/project" in dockerfile
    pins = (ROOT / "requirements.txt").read_text()
    assert "apache-airflow==3.3.2" in pins  # the same Airflow as the image
