"""allyy_upload end to end through Airflow: validated Recreativ partitions arrive at the Allyy sandbox
whole, once, in the configured format, and a quarantined partition never does.

The oracle is independent of the code under test: the rows each upload should
carry are read from the Recreativ sandbox with plain requests and written in
the documented text forms; what arrived is what the Allyy sandbox parsed the
uploaded file into (its control view).
"""

from __future__ import annotations

import os
import uuid
from datetime import date
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
CSV_DATASET, JSON_DATASET = "recreativ/campaign_statistics", "recreativ/offer_statistics"


@pytest.fixture
def world(sandbox: Sandbox, connect, data_root: Path, state_dir: Path, airflow_db: None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    sandbox.configure("recreativ", campaigns=6)
    sandbox.configure("allyy", processing_seconds=0.5)
    return {"recreativ": connect("recreativ", requests_per_second=50), "allyy": connect("allyy")}


def publish(dataset: str, day: date = DAY) -> Any:
    """A validated partition, as recreativ_statistics would publish it (the producer is not under test here)."""
    from vendorflow import datasets
    from vendorflow.pipeline.run import run_dataset
    from vendorflow.vendors.recreativ.hook import RecreativHook

    return run_dataset(datasets.get(dataset), hook=RecreativHook(), dt=day, run_id=f"test-{uuid.uuid4().hex[:6]}")


def run_upload(*partitions: str, force: bool = False, day: date = DAY) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["allyy_upload"]
    for task in dag.tasks:
        task.retries = 0
        if task.task_id == "upload":
            task.poll_interval = 0.2
    return dag.test(
        logical_date=logical_date_for(dag, day),
        run_conf={"partitions": list(partitions), "force": force},
    )


def arrived(sandbox: Sandbox) -> list[dict[str, Any]]:
    return sandbox._call("GET", "/_sandbox/allyy/uploads")


def recreativ_rows(conn: dict[str, Any], day: date) -> dict[str, list[dict[str, str]]]:
    """The day's statistics straight from the Recreativ sandbox, in the upload's documented text forms."""

    def get(**params: Any) -> Any:
        response = requests.get(
            conn["host"] + "/advertiser/statistics",
            params=params,
            headers={"Auth-Token": f"{conn['password']}-oracle-{uuid.uuid4().hex}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    money = lambda v: str(Decimal(str(v)).quantize(Decimal("0.0001")))  # noqa: E731
    campaigns = [
        {
            "campaign_id": str(s["campaignId"]),
            "date": s["date"],
            "views": str(s["views"]),
            "clicks": str(s["clicks"]),
            "money": money(s["money"]),
        }
        for s in get(**{"scope": "campaigns", "filter[dateFrom]": day.isoformat(), "filter[dateTo]": day.isoformat()})
    ]
    offers = []
    for campaign_id in range(1001, 1007):
        for s in get(**{"scope": "offers", "filter[date]": day.isoformat(), "filter[campaignId]": campaign_id}):
            offers.append(
                {
                    "offer_id": s["offerId"],
                    "campaign_id": campaign_id,
                    "date": s["date"],
                    "views": s["views"],
                    "clicks": s["clicks"],
                    "money": money(s["money"]),
                }
            )
    return {CSV_DATASET: campaigns, JSON_DATASET: offers}


def without_extracted_at(rows: list[dict[str, Any]]) -> list[tuple]:
    """The rows without ``_extracted_at``, and without ``account`` (always ``default`` here: checked)."""
    assert all(r.get("account", "default") == "default" for r in rows)
    return sorted(tuple(sorted((k, v) for k, v in r.items() if k not in ("_extracted_at", "account"))) for r in rows)


def extracted_at_texts(data_root: Path, dataset: str, day: date = DAY) -> list[str]:
    return sorted(
        r[0]
        for r in duckdb.sql(
            f"select strftime(_extracted_at at time zone 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ') "
            f"from read_parquet('{data_root}/{dataset}/dt={day}/data.parquet')"
        ).fetchall()
    )


def ledger_rows(data_root: Path) -> list[tuple]:
    return sorted(
        duckdb.sql(
            f"select dataset, partition, format, upload_id, rows, state, processed_lines from "
            f"read_parquet('{data_root}/allyy/uploads/*/*.parquet', hive_partitioning=true) "
            f"where dt = (select max(dt) from read_parquet('{data_root}/allyy/uploads/*/*.parquet', "
            "hive_partitioning=true))"
        ).fetchall()
    )


def test_a_csv_and_a_json_upload_carry_exactly_the_partitions_rows_once(
    world: dict[str, Any], sandbox: Sandbox, data_root: Path
) -> None:
    for dataset in (CSV_DATASET, JSON_DATASET):
        publish(dataset)
    run = run_upload(f"{CSV_DATASET}/dt={DAY}", f"{JSON_DATASET}/dt={DAY}")
    assert run.state == "success"

    uploads = arrived(sandbox)
    assert [(u["format"], u["datasourceId"]) for u in uploads] == [
        ("csv", "7f1d2c3b-4a5e-4f60-8a71-92b3c4d5e6f7"),
        ("json", "a2b3c4d5-e6f7-4809-9a1b-2c3d4e5f6a7b"),
    ]
    expected = recreativ_rows(world["recreativ"], DAY)
    for upload, dataset in zip(uploads, (CSV_DATASET, JSON_DATASET), strict=True):
        assert expected[dataset], f"the sandbox should have {dataset} rows for {DAY}"
        assert without_extracted_at(upload["rows"]) == without_extracted_at(expected[dataset]), dataset
        assert sorted(r["_extracted_at"] for r in upload["rows"]) == extracted_at_texts(data_root, dataset)

    csv_id, json_id = (u["id"] for u in uploads)
    assert ledger_rows(data_root) == sorted(
        [
            (CSV_DATASET, DAY, "csv", csv_id, len(expected[CSV_DATASET]), "finished", len(expected[CSV_DATASET])),
            (JSON_DATASET, DAY, "json", json_id, len(expected[JSON_DATASET]), "finished", len(expected[JSON_DATASET])),
        ]
    )

    # A rerun sends nothing again; force does.
    assert run_upload(f"{CSV_DATASET}/dt={DAY}", f"{JSON_DATASET}/dt={DAY}").state == "success"
    assert len(arrived(sandbox)) == 2
    assert run_upload(f"{JSON_DATASET}/dt={DAY}", force=True).state == "success"
    again = arrived(sandbox)
    assert len(again) == 3 and again[-1]["format"] == "json"
    assert without_extracted_at(again[-1]["rows"]) == without_extracted_at(expected[JSON_DATASET])
    assert (
        JSON_DATASET,
        DAY,
        "json",
        again[-1]["id"],
        len(expected[JSON_DATASET]),
        "finished",
        len(expected[JSON_DATASET]),
    ) in ledger_rows(data_root)


def test_a_partition_that_failed_validation_is_never_uploaded(
    world: dict[str, Any], sandbox: Sandbox, data_root: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from vendorflow.errors import ValidationFailed

    # Recreativ serves a row twice: the batch fails its uniqueness expectation and is quarantined.
    sandbox.fault(
        "recreativ", "malformed", variant="duplicate", path="/advertiser/statistics", query="scope=campaigns", count=1
    )
    with pytest.raises(ValidationFailed):
        publish(CSV_DATASET)
    assert list((data_root / "_quarantine" / CSV_DATASET / f"dt={DAY}").glob("*/data.parquet"))
    publish(JSON_DATASET)  # a good one in the same run is held back too: the run is refused before anything is sent

    run = run_upload(f"{CSV_DATASET}/dt={DAY}", f"{JSON_DATASET}/dt={DAY}")
    assert run.state == "failed"
    assert arrived(sandbox) == []
    assert not any(r["method"] == "POST" and r["path"].endswith("/upload") for r in sandbox.requests("allyy"))
    log = "".join(capfd.readouterr())
    assert f"{CSV_DATASET}/dt={DAY}: it failed validation and is quarantined" in log


def test_a_failed_upload_fails_the_task_with_allyys_messages(
    world: dict[str, Any], sandbox: Sandbox, data_root: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    publish(CSV_DATASET)
    sandbox.configure("allyy", fail_uploads="column 'money' is not a number")
    run = run_upload(f"{CSV_DATASET}/dt={DAY}")
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {
        "upload": "failed",
        "uploads": "success",
        "all_uploaded": "upstream_failed",
    }  # recorded for analysts too
    log = "".join(capfd.readouterr())
    assert "rejected the file: column 'money' is not a number" in log
    [row] = ledger_rows(data_root)
    assert row[5] == "failed" and row[3] == arrived(sandbox)[0]["id"]

    # Allyy rejected it, so it was not delivered: the next run sends it again.
    sandbox.configure("allyy", fail_uploads=None)
    assert run_upload(f"{CSV_DATASET}/dt={DAY}").state == "success"
    assert len(arrived(sandbox)) == 2
    assert ledger_rows(data_root)[0][5] == "finished"
