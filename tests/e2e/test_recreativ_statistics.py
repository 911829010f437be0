"""recreativ_statistics end to end through Airflow, checked row by row against the sandbox."""

from __future__ import annotations

import os
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests

from include.sandbox.control import Sandbox
from tests.dagruns import logical_date_for

pytestmark = pytest.mark.e2e
DAY = date(2024, 3, 1)
DATASETS = ("campaigns", "campaign_statistics", "offer_statistics")


@pytest.fixture
def recreativ(sandbox: Sandbox, connect, data_root: Path, state_dir: Path, airflow_db: None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    sandbox.configure("recreativ", campaigns=12)  # the real 5 requests/s limit stays on
    return connect("recreativ")


def run_dag(day: date = DAY) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["recreativ_statistics"]
    for task in dag.tasks:
        task.retries = 0  # a failure should fail the run now, not in five minutes
    return dag.test(logical_date=logical_date_for(dag, day))


def oracle(conn: dict[str, Any], path: str, **params: Any) -> Any:
    """The sandbox read with plain requests, independent of the code under test (each call a token of its
    own, so it neither spends the DAG's budget nor waits for one)."""
    response = requests.get(
        conn["host"] + path,
        params=params,
        headers={"Auth-Token": f"{conn['password']}-oracle-{uuid.uuid4().hex}"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()


def expected_rows(conn: dict[str, Any], day: date) -> dict[str, list[tuple]]:
    money = lambda v: Decimal(str(v)).quantize(Decimal("0.0001"))  # noqa: E731
    campaigns = oracle(conn, "/advertiser/campaigns")
    stats = oracle(
        conn,
        "/advertiser/statistics",
        **{"scope": "campaigns", "filter[dateFrom]": day.isoformat(), "filter[dateTo]": day.isoformat()},
    )
    offers = []
    for campaign in campaigns:
        for row in oracle(
            conn,
            "/advertiser/statistics",
            **{"scope": "offers", "filter[date]": day.isoformat(), "filter[campaignId]": campaign["id"]},
        ):
            offers.append(
                (
                    row["offerId"],
                    campaign["id"],
                    date.fromisoformat(row["date"]),
                    row["views"],
                    row["clicks"],
                    money(row["money"]),
                )
            )
    return {
        "campaigns": sorted(
            (c["id"], c["title"], bool(c["active"]), c["maxclicks"], money(c["maxmoney"]), bool(c["isRetarget"]))
            for c in campaigns
        ),
        "campaign_statistics": sorted(
            (s["campaignId"], date.fromisoformat(s["date"]), s["views"], s["clicks"], money(s["money"])) for s in stats
        ),
        "offer_statistics": sorted(offers),
    }


COLUMNS = {
    "campaigns": "id, title, active, maxclicks, maxmoney, is_retarget",
    "campaign_statistics": "campaign_id, date, views, clicks, money",
    "offer_statistics": "offer_id, campaign_id, date, views, clicks, money",
}


def written_rows(data_root: Path, dataset: str, day: date = DAY) -> list[tuple]:
    """Read the way the README tells analysts to: DuckDB over the hive-partitioned glob."""
    glob = f"{data_root}/recreativ/{dataset}/*/*.parquet"
    return sorted(
        duckdb.sql(
            f"select {COLUMNS[dataset]} from read_parquet('{glob}', hive_partitioning=true) where dt = '{day}'"
        ).fetchall()
    )


def test_the_dag_writes_exactly_the_vendors_rows(recreativ: dict[str, Any], data_root: Path) -> None:
    started = datetime.now(timezone.utc)
    run = run_dag()
    assert run.state == "success"
    expected = expected_rows(recreativ, DAY)
    for dataset in DATASETS:
        assert written_rows(data_root, dataset) == expected[dataset], dataset
        assert expected[dataset], f"the sandbox should have {dataset} rows for {DAY}"
    assert len(expected["offer_statistics"]) > len(expected["campaign_statistics"])  # several ads per campaign
    extracted = duckdb.sql(
        f"select min(_extracted_at), max(_extracted_at), count(*) filter (where _extracted_at is null) "
        f"from read_parquet('{data_root}/recreativ/*/*/*.parquet', union_by_name=true)"
    ).fetchall()[0]
    assert started <= extracted[0] <= extracted[1] <= datetime.now(timezone.utc) and extracted[2] == 0
    schema = duckdb.sql(
        f"describe select * from read_parquet('{data_root}/recreativ/offer_statistics/*/*.parquet', "
        "hive_partitioning=true)"
    ).fetchall()
    assert [(c[0], c[1]) for c in schema] == [
        ("offer_id", "BIGINT"),
        ("campaign_id", "BIGINT"),
        ("date", "DATE"),
        ("views", "BIGINT"),
        ("clicks", "BIGINT"),
        ("money", "DECIMAL(18,4)"),
        ("account", "VARCHAR"),
        ("_extracted_at", "TIMESTAMP WITH TIME ZONE"),
        ("dt", "DATE"),
    ]


def _asset_events(dataset: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == dataset)
        ).all()
    return [r[0] for r in rows]


def test_a_rerun_replaces_the_day_without_duplicates(recreativ: dict[str, Any], data_root: Path) -> None:
    assert run_dag().state == "success"
    first = {d: written_rows(data_root, d) for d in DATASETS}
    events_before = len(_asset_events("recreativ/offer_statistics"))
    assert run_dag().state == "success"
    for dataset in DATASETS:
        assert written_rows(data_root, dataset) == first[dataset]
        files = sorted(
            f.relative_to(data_root).as_posix() for f in (data_root / "recreativ" / dataset).rglob("*.parquet")
        )
        # The statistics re-extract the 3 days before the run's own (late clicks and spend); the list is a snapshot.
        days = ["2024-03-01"] if dataset == "campaigns" else ["2024-02-27", "2024-02-28", "2024-02-29", "2024-03-01"]
        assert files == [f"recreativ/{dataset}/dt={d}/data.parquet" for d in days]
    events = _asset_events("recreativ/offer_statistics")
    assert len(events) == events_before + 1
    assert events[-1]["dt"] == "2024-03-01" and events[-1]["rows"] == len(first["offer_statistics"])
    # The vendor's numbers for the lookback days did not change: the rerun left them as they were.
    assert events[-1]["unchanged_days"] == ["2024-02-27", "2024-02-28", "2024-02-29"]
    assert [p["dt"] for p in events[-1]["partitions"]] == ["2024-03-01"]


def test_a_batch_that_fails_validation_is_quarantined_and_publishes_nothing(
    recreativ: dict[str, Any],
    sandbox: Sandbox,
    data_root: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The run's own day only, so the vendor's fault lands on it.
    monkeypatch.setenv(
        "AIRFLOW_VAR_LOOKBACK_DAYS", '{"recreativ/campaign_statistics": 0, "recreativ/offer_statistics": 0}'
    )
    assert run_dag().state == "success"
    published = data_root / "recreativ/campaign_statistics/dt=2024-03-01/data.parquet"
    before = published.read_bytes()
    events_before = len(_asset_events("recreativ/campaign_statistics"))

    # The vendor serves one campaign's row twice: the key (campaign_id, date) is no longer unique.
    sandbox.fault(
        "recreativ", "malformed", variant="duplicate", path="/advertiser/statistics", query="scope=campaigns", count=5
    )
    run = run_dag()
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"campaigns": "success", "campaign_statistics": "failed", "offer_statistics": "success"}
    assert published.read_bytes() == before  # the published partition is untouched
    quarantined = list(
        (data_root / "_quarantine/recreativ/campaign_statistics/dt=2024-03-01").glob("*/validation.json")
    )
    assert len(quarantined) == 1 and (quarantined[0].parent / "data.parquet").exists()
    assert len(_asset_events("recreativ/campaign_statistics")) == events_before  # nothing downstream is told
    output = capfd.readouterr()
    log = output.out + output.err
    assert "expect_compound_columns_to_be_unique(column_list=['campaign_id', 'date']): 2 unexpected values" in log
    assert "is quarantined at" in log and "the published partition is unchanged" in log


def test_a_past_day_covers_the_campaigns_it_had_even_those_deleted_since(
    recreativ: dict[str, Any], sandbox: Sandbox, data_root: Path
) -> None:
    """Offer statistics of a day are read for the campaigns with statistics that day, not today's list: a
    campaign deleted the next day is in its last day's offer statistics (and in no campaign snapshot)."""
    window = {"filter[dateFrom]": DAY.isoformat(), "filter[dateTo]": DAY.isoformat()}
    that_day = oracle(recreativ, "/advertiser/statistics", scope="campaigns", **window)
    deleted = that_day[0]["campaignId"]
    sandbox.configure("recreativ", retired={str(deleted): (DAY + timedelta(days=1)).isoformat()})
    assert deleted not in {c["id"] for c in oracle(recreativ, "/advertiser/campaigns")}, "deleted: listed no more"
    assert [s["campaignId"] for s in oracle(recreativ, "/advertiser/statistics", scope="campaigns", **window)] == [
        s["campaignId"] for s in that_day
    ], "the day's statistics still hold it"
    money = lambda v: Decimal(str(v)).quantize(Decimal("0.0001"))  # noqa: E731
    expected = sorted(
        (r["offerId"], s["campaignId"], date.fromisoformat(r["date"]), r["views"], r["clicks"], money(r["money"]))
        for s in that_day
        for r in oracle(
            recreativ,
            "/advertiser/statistics",
            **{"scope": "offers", "filter[date]": DAY.isoformat(), "filter[campaignId]": s["campaignId"]},
        )
    )
    assert any(row[1] == deleted for row in expected), "the deleted campaign had ad statistics that day"

    assert run_dag().state == "success"
    assert written_rows(data_root, "offer_statistics") == expected
    assert deleted not in {row[0] for row in written_rows(data_root, "campaigns")}
