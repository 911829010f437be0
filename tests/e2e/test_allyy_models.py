"""allyy_models end to end through Airflow, checked row by row against the sandbox read independently."""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests

from include.sandbox.control import Sandbox
from tests.dagruns import logical_date_for

pytestmark = pytest.mark.e2e
DAY = date(2024, 3, 1)
COLUMNS = (
    "model_id, customer_id, data_set_id, title, type, status, training_status, training_started, "
    "training_finished, training_error_code, au_roc"
)


@pytest.fixture
def allyy(sandbox: Sandbox, connect, data_root: Path, state_dir: Path, airflow_db: None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    sandbox.configure("allyy", models=23, max_take=5)  # several pages whatever take the hook asks for
    return connect("allyy", page_size=10)


def run_dag(day: date = DAY) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["allyy_models"]
    for task in dag.tasks:
        task.retries = 0
    return dag.test(logical_date=logical_date_for(dag, day))


def oracle_models(conn: dict[str, Any]) -> list[dict[str, Any]]:
    """The documented API asked with plain requests: a token of its own, then every page by take/skip."""
    token = requests.post(
        conn["host"] + "/api/authentication/connect/token",
        data={
            "grant_type": "client_credentials",
            "client_id": conn["login"] + "-oracle",
            "client_secret": conn["password"],
            "scope": "allyy_api",
        },
        timeout=10,
    ).json()["access_token"]
    url = f"{conn['host']}/api/model/v1.0/customer/{conn['extra']['customer_id']}/model_v2_1"
    models: list[dict[str, Any]] = []
    while True:
        body = requests.get(
            url, params={"take": 3, "skip": len(models)}, headers={"Authorization": f"Bearer {token}"}, timeout=10
        ).json()
        models += body["data"]
        if len(models) >= body["totalItemsCount"]:
            return models


def instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def test_the_snapshot_holds_exactly_the_customers_models(allyy: dict[str, Any], data_root: Path) -> None:
    run = run_dag()
    assert run.state == "success"
    expected = sorted(
        (
            m["id"],
            m["customerId"],
            m["dataSetId"],
            m["title"],
            m["type"],
            m["status"],
            m["trainingStatus"],
            instant(m["trainingStarted"]),
            instant(m["trainingFinished"]),
            m["trainingErrorCode"],
            m["auRoc"],
        )
        for m in oracle_models(allyy)
    )
    assert len(expected) == 23
    written = sorted(
        duckdb.sql(
            f"select {COLUMNS} from read_parquet('{data_root}/allyy/models/*/*.parquet', hive_partitioning=true) "
            f"where dt = '{DAY}'"
        ).fetchall()
    )
    assert written == expected
    assert any(row[-1] is None for row in written) and any(
        row[-1] is not None for row in written
    )  # untrained models too


def test_a_broken_answer_fails_the_run_and_publishes_nothing(
    allyy: dict[str, Any], sandbox: Sandbox, data_root: Path
) -> None:
    sandbox.fault("allyy", "malformed", variant="wrong_type", field="auRoc", path="/api/model", count=20)
    run = run_dag()
    assert run.state == "failed"
    assert not (data_root / "allyy/models").exists()
