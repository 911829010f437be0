"""recomendo_usage end to end through Airflow, checked against the sandbox's report read independently."""

from __future__ import annotations

import base64
import os
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests

from include.sandbox.control import Sandbox
from tests.dagruns import logical_date_for

pytestmark = pytest.mark.e2e
DAY = date(2024, 3, 4)


def run_dag(day: date = DAY) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["recomendo_usage"]
    for task in dag.tasks:
        task.retries = 0
    return dag.test(logical_date=logical_date_for(dag, day))


def oracle_usage(conn: dict[str, Any]) -> dict[str, Any]:
    """The report read with plain requests, as the documentation describes the two calls."""
    basic = base64.b64encode(f"{conn['login']}:{conn['password']}".encode()).decode()
    token = requests.post(
        conn["extra"]["auth_url"] + "/v1/auth", headers={"Authorization": f"Basic {basic}"}, timeout=10
    ).json()["payload"]["token"]
    body = requests.get(
        conn["extra"]["client_url"] + "/v1/usage", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).json()
    assert body["success"] and body["messageCode"] == "USAGE_REPORT_AVAILABLE"
    return body["payload"]


def written(data_root: Path) -> list[tuple]:
    glob = f"{data_root}/recomendo/usage/*/*.parquet"
    return sorted(
        duckdb.sql(
            f"select date, user_quota, remaining_quota, usage_plan, dt from read_parquet('{glob}', "
            "hive_partitioning=true)"
        ).fetchall()
    )


def _asset_extras(name: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == name)
        ).all()
    return [r[0] for r in rows]


@pytest.fixture
def recomendo(sandbox: Sandbox, connect, data_root: Path, state_dir: Path, airflow_db: None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    sandbox.configure("recomendo", today="2024-03-05", usage_plan="STARTER")
    return connect("recomendo")


def test_the_dag_writes_the_report_as_returned(recomendo: dict[str, Any], sandbox: Sandbox, data_root: Path) -> None:
    run = run_dag()
    assert run.state == "success"
    report = oracle_usage(recomendo)
    expected = sorted(
        (date.fromisoformat(u["date"]), u["userQuota"], u["remainingQuota"], "STARTER", DAY) for u in report["usages"]
    )
    assert len(expected) == 5 and written(data_root) == expected
    extra = _asset_extras("recomendo/usage")[-1]
    assert extra["dt"] == "2024-03-04" and extra["rows"] == 5
    assert (
        extra["quota"]["quota_warning"] is False
        and extra["quota"]["remaining_quota"] == report["usages"][-1]["remainingQuota"]
    )
    # a rerun replaces the partition: same rows, one file
    assert run_dag().state == "success"
    assert written(data_root) == expected
    assert [p.name for p in (data_root / "recomendo/usage").rglob("*.parquet")] == ["data.parquet"]
    auths = sandbox._call("GET", "/_sandbox/recomendo/auths", params={"client": recomendo["login"]})
    assert len(auths) == 2  # the DAG's one token for both runs, and the oracle's


def test_a_low_quota_is_a_warning_in_the_log_and_the_asset_event(
    recomendo: dict[str, Any], sandbox: Sandbox, data_root: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    report = oracle_usage(recomendo)
    used = sum(u["userQuota"] for u in report["usages"])
    sandbox.configure("recomendo", monthly_quota=used + used // 20)  # about 5% left
    assert run_dag().state == "success"
    quota = _asset_extras("recomendo/usage")[-1]["quota"]
    assert quota["quota_warning"] is True and quota["monthly_quota"] == used + used // 20
    assert quota["remaining_quota"] == used // 20 and quota["remaining_share"] < 0.1
    output = capfd.readouterr()
    assert "Recomendo quota low" in output.out + output.err
