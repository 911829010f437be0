"""recomendo_usage end to end through Airflow, checked against the sandbox's report read independently."""

from __future__ import annotations

import base64
import os
import time
from concurrent.futures import ThreadPoolExecutor
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


def load_dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags[dag_id]
    for task in dag.tasks:
        task.retries = 0
    return dag


def run_dag(day: date = DAY) -> Any:
    dag = load_dag("recomendo_usage")
    return dag.test(logical_date=logical_date_for(dag, day))


def oracle_token(conn: dict[str, Any]) -> str:
    basic = base64.b64encode(f"{conn['login']}:{conn['password']}".encode()).decode()
    return requests.post(
        conn["extra"]["auth_url"] + "/v1/auth", headers={"Authorization": f"Basic {basic}"}, timeout=10
    ).json()["payload"]["token"]


def oracle_usage(conn: dict[str, Any]) -> dict[str, Any]:
    """The report read with plain requests, as the documentation describes the two calls."""
    token = oracle_token(conn)
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


MONTH_END = date(2024, 3, 31)


def usage_reads(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.requests("recomendo") if r["path"].endswith("/v1/usage") and r["status"] == 200)


def wait_for(condition: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def use_then_roll_over(sandbox: Sandbox, conn: dict[str, Any], queries: int) -> None:
    """The vendor side of a month's last minutes: once the DAG is polling, the site makes ``queries``
    queries (usage of the last day), the DAG reads the report once more, and the month rolls over."""
    token = oracle_token(conn)
    wait_for(lambda: usage_reads(sandbox) >= 2, "the month-end task to read the report twice")
    for n in range(queries):
        answer = requests.post(
            conn["extra"]["predictions_url"] + "/v1/queries.json",
            headers={"Authorization": f"Bearer {token}"},
            json={"user": f"u-{n}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
    seen = usage_reads(sandbox)
    wait_for(lambda: usage_reads(sandbox) > seen, "a read after the last query")
    sandbox.configure("recomendo", rollover_at=time.time())


def test_the_month_end_capture_holds_the_whole_month_as_recomendo_counts_it_at_the_rollover(
    sandbox: Sandbox, connect, data_root: Path, state_dir: Path, airflow_db: None
) -> None:
    import pendulum

    conn = connect("recomendo", usage_poll_seconds=0.2, month_end_wait_seconds=180)
    sandbox.configure("recomendo", today=MONTH_END.isoformat(), usage_plan="STARTER")
    dag = load_dag("recomendo_usage_month_end")
    with ThreadPoolExecutor(1) as pool:
        vendor = pool.submit(use_then_roll_over, sandbox, conn, 7)
        # the scheduled run: 23:58 on the month's last day, its data interval that day from 00:00
        run = dag.test(logical_date=pendulum.datetime(2024, 3, 31, 23, 58, tz="UTC"))
        vendor.result(timeout=5)
    assert run.state == "success"
    assert sandbox.requests("recomendo") and oracle_usage(conn)["startDate"] == "2024-04-01"  # rolled over
    final = sandbox._call(
        "GET", "/_sandbox/recomendo/usage", params={"client": conn["login"], "day": MONTH_END.isoformat()}
    )
    expected = sorted(
        (date.fromisoformat(u["date"]), u["userQuota"], u["remainingQuota"], "STARTER", MONTH_END)
        for u in final["usages"]
    )
    # every day of March, the last one with the 7 queries of its last minutes: Recomendo's final count
    assert len(expected) == 31 and written(data_root) == expected
    from vendorflow.pipeline.storage import Lake

    manifest = Lake(str(data_root)).read_manifest("recomendo/usage", MONTH_END)
    facts = manifest["parameters"]
    assert facts["month_end_reads"] >= 4 and facts["rollover_seen_at"] > facts["month_end_read_at"]
    assert facts["month_end_gap_seconds"] is not None

    # recomendo_usage's own run for that day comes after midnight: the month is over, so it is skipped
    # and the month-end partition stays as it was
    daily = run_dag(MONTH_END)
    states = {ti.task_id: ti.state for ti in daily.get_task_instances()}
    assert states == {"usage": "skipped"}
    assert Lake(str(data_root)).read_manifest("recomendo/usage", MONTH_END)["run_id"] == manifest["run_id"]
    assert written(data_root) == expected
