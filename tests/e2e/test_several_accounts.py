"""Two accounts of every vendor in one deployment, end to end through Airflow (``dag.test``).

Each vendor's second account is the sandbox's second tenant (``/b/<vendor>``): other
data, credentials the first tenant refuses. What was read is checked against each
tenant read independently (the Footprints oracle, the sandbox's own records), and
against the other account: nothing overwritten, skipped, or leaked across.
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from include.sandbox.connections import connections
from include.sandbox.control import Sandbox
from tests.conftest import unique_suffix
from tests.dagruns import logical_date_for
from tests.oracles.footprints import Oracle

pytestmark = pytest.mark.e2e
DAY = date(2024, 3, 1)
# Account name -> sandbox tenant, per vendor; the names are what VENDORFLOW_ACCOUNTS configures.
ACCOUNTS = {
    "footprints": {"ro": "", "md": "b"},
    "recreativ": {"brand": "", "retail": "b"},
    "algonomy": {"site_a": "", "site_b": "b"},
    "recomendo": {"ro": "", "md": "b"},
    "allyy": {"default": "", "second": "b"},
}


@pytest.fixture
def accounts(
    sandbox: Sandbox,
    data_root: Path,
    state_dir: Path,
    airflow_db: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every vendor's two accounts as connections (``<vendor>_<account>``) and ``VENDORFLOW_ACCOUNTS``;
    returns each account's connection."""
    sandbox.configure("algonomy", rate_limit=2000)
    sandbox.configure("algonomy-b", rate_limit=2000)
    made: dict[str, dict[str, dict[str, Any]]] = {}
    document: dict[str, dict[str, Any]] = {}
    for vendor, names in ACCOUNTS.items():
        made[vendor], document[vendor] = {}, {}
        for name, tenant in names.items():
            conn = dict(
                connections(sandbox.base_url, suffix=unique_suffix(), tenant=tenant)[f"{vendor}_{tenant or 'default'}"]
            )
            if vendor == "algonomy":
                conn["extra"] = {**conn["extra"], "requests_per_second": 1000, "backoff_seconds": 0.01}
            conn_id = f"{vendor}_{name}"
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
            made[vendor][name] = conn
            document[vendor][name] = conn_id
    document["recomendo"] = {"ro": {"conn_id": "recomendo_ro"}, "md": {"conn_id": "recomendo_md", "footprints": ["md"]}}
    path = tmp_path / "accounts.json"
    path.write_text(json.dumps(document))
    monkeypatch.setenv("VENDORFLOW_ACCOUNTS", str(path))
    return made


def the_dag(dag_id: str, tasks: list[str] | None = None) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags[dag_id]
    if tasks:
        dag = dag.partial_subset(tasks, include_upstream=False)
    for task in dag.tasks:
        task.retries = 0
    return dag


def run(dag_id: str, tasks: list[str] | None = None, conf: dict[str, Any] | None = None) -> Any:
    dag = the_dag(dag_id, tasks)
    return dag.test(logical_date=logical_date_for(dag, DAY), run_conf=conf)


def states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def rows(data_root: Path, dataset: str, columns: str, day: date | None = DAY) -> list[tuple]:
    """The dataset as one table (the README's recipe), the run's day only unless ``day`` is None."""
    return duckdb.sql(
        f"select {columns} from read_parquet('{data_root}/{dataset}/*/*.parquet', hive_partitioning=true)"
        + (f" where dt = '{day}'" if day else "")
    ).fetchall()


def test_each_dag_shows_a_task_group_per_account(accounts: dict[str, Any]) -> None:
    dag = the_dag("footprints_leads")
    assert {t.task_id for t in dag.tasks} >= {"ro.leads", "md.leads", "ro.lead_status_changes", "md.offers"}
    assert set(dag.task_group.children) == {"ro", "md"}
    optout = the_dag("algonomy_optout")
    assert {t.task_id for t in optout.tasks} == {"record_requests", "site_a.send_opt_outs", "site_b.send_opt_outs"}
    upload = {t.task_id for t in the_dag("allyy_upload").tasks}
    assert upload == {"default.upload", "default.uploads", "second.upload", "second.uploads", "all_uploaded"}


def test_two_footprints_tenants_in_one_run_each_exact_and_apart(accounts: dict[str, Any], data_root: Path) -> None:
    run_result = run("footprints_leads", ["ro.leads", "md.leads", "ro.lead_status_changes", "md.lead_status_changes"])
    assert set(states(run_result).values()) == {"success"}, states(run_result)

    expected = {
        name: {lead["_id"] for lead in Oracle(conn).leads(DAY)} for name, conn in accounts["footprints"].items()
    }
    assert expected["ro"] and expected["md"] and not expected["ro"] & expected["md"], "the tenants' data differ"
    found: dict[str, list[str]] = {"ro": [], "md": []}
    for account, lead_id in rows(data_root, "footprints/leads", "account, lead_id"):
        found[account].append(lead_id)
    for name in ("ro", "md"):
        assert len(found[name]) == len(set(found[name])), f"{name}: no lead twice"
        assert set(found[name]) == expected[name], f"{name}: every lead of its tenant, and only those"
    folder = data_root / "footprints/leads" / f"dt={DAY}"
    assert sorted(p.name for p in folder.glob("*.parquet")) == ["md.parquet", "ro.parquet"]
    history = rows(data_root, "footprints/lead_status_changes", "account, lead_id")
    assert {a for a, _ in history} == {"ro", "md"} and all(i in expected[a] for a, i in history)

    # A rerun of one account's day replaces that account's file only.
    before = {p.name: pq.read_schema(p).metadata[b"vendorflow.manifest"] for p in folder.glob("*.parquet")}
    again = run("footprints_leads", ["md.leads"])
    assert set(states(again).values()) == {"success"}
    after = {p.name: pq.read_schema(p).metadata[b"vendorflow.manifest"] for p in folder.glob("*.parquet")}
    assert after["ro.parquet"] == before["ro.parquet"] and after["md.parquet"] != before["md.parquet"]
    assert sorted(a for a, _ in rows(data_root, "footprints/leads", "account, lead_id") if a == "md") == ["md"] * len(
        expected["md"]
    )


def test_one_accounts_failure_does_not_stop_the_other(
    accounts: dict[str, Any], data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_RECREATIV_RETAIL")  # its connection is missing: its tasks fail, clearly
    result = run("recreativ_statistics", ["brand.campaigns", "retail.campaigns"])
    got = states(result)
    assert got["brand.campaigns"] == "success" and got["retail.campaigns"] == "failed", got
    campaigns = rows(data_root, "recreativ/campaigns", "account, id")
    assert {a for a, _ in campaigns} == {"brand"} and min(c for _, c in campaigns) == 1001


def test_two_recreativ_tokens_each_get_their_own_campaigns(accounts: dict[str, Any], data_root: Path) -> None:
    result = run("recreativ_statistics", ["brand.campaigns", "retail.campaigns"])
    assert set(states(result).values()) == {"success"}
    found: dict[str, set[int]] = {"brand": set(), "retail": set()}
    for account, campaign in rows(data_root, "recreativ/campaigns", "account, id"):
        found[account].add(campaign)
    assert found == {"brand": set(range(1001, 1051)), "retail": set(range(5001, 5031))}


def optouts(sandbox: Sandbox, tenant: str) -> set[str]:
    return set(sandbox._call("GET", "/_sandbox/algonomy/optouts", params={"tenant": tenant})["users"])


def test_the_same_user_opted_out_of_two_algonomy_sites_is_sent_to_both(
    accounts: dict[str, Any], sandbox: Sandbox, data_root: Path
) -> None:
    inbox = data_root / "algonomy" / "inbox" / "site_a"
    inbox.mkdir(parents=True)
    (inbox / "only-a.csv").write_text("user_id\nonly-a-1\n")
    first = run("algonomy_optout", conf={"user_ids": ["u-1", "u-2"]})
    assert set(states(first).values()) == {"success"}, states(first)
    assert optouts(sandbox, "") == {"u-1", "u-2", "only-a-1"}
    assert optouts(sandbox, "b") == {"u-1", "u-2"}

    second = run("algonomy_optout", conf={"user_ids": ["u-3"], "accounts": ["site_b"]})
    assert set(states(second).values()) == {"success"}
    assert optouts(sandbox, "") == {"u-1", "u-2", "only-a-1"} and optouts(sandbox, "b") == {"u-1", "u-2", "u-3"}
    published = sorted(rows(data_root, "algonomy/optouts", "account, user_id, status"))
    assert published == [
        ("site_a", "only-a-1", "accepted"),
        ("site_a", "u-1", "accepted"),
        ("site_a", "u-2", "accepted"),
        ("site_b", "u-1", "accepted"),
        ("site_b", "u-2", "accepted"),
        ("site_b", "u-3", "accepted"),
    ]
    bad = run("algonomy_optout", conf={"user_ids": ["u-4"], "accounts": ["site_c"]})
    assert states(bad)["record_requests"] == "failed"
    assert "u-4" not in optouts(sandbox, "") | optouts(sandbox, "b")


def test_each_recomendo_account_gets_the_leads_of_the_footprints_accounts_configured_to_feed_it(
    accounts: dict[str, Any], sandbox: Sandbox, data_root: Path
) -> None:
    leads = run("footprints_leads", ["ro.leads", "md.leads"])
    assert set(states(leads).values()) == {"success"}
    result = run("recomendo_training", ["ro.send_events", "md.send_events"], conf={"dt": DAY.isoformat()})
    assert set(states(result).values()) == {"success"}, states(result)
    per_lead = {
        a: {c for b, c in rows(data_root, "footprints/leads", "account, client_id") if b == a} for a in ("ro", "md")
    }
    for name in ("ro", "md"):
        conn = accounts["recomendo"][name]
        sent = sandbox._call("GET", "/_sandbox/recomendo/events", params={"client": conn["login"]})
        assert {e["entityId"] for e in sent} == per_lead[name], f"{name} gets {name}'s leads only"
    sent_rows = rows(data_root, "recomendo/events_sent", "account, status")
    assert {a for a, _ in sent_rows} == {"ro", "md"} and {s for _, s in sent_rows} == {"accepted"}


def test_two_allyy_customers_each_get_their_own_models(accounts: dict[str, Any], data_root: Path) -> None:
    result = run("allyy_models")
    assert set(states(result).values()) == {"success"}, states(result)
    models = rows(data_root, "allyy/models", "account, customer_id, model_id")
    customers = {a: {c for b, c, _ in models if b == a} for a in ("default", "second")}
    assert customers == {
        "default": {accounts["allyy"]["default"]["extra"]["customer_id"]},
        "second": {accounts["allyy"]["second"]["extra"]["customer_id"]},
    }
    ids = {a: {m for b, _, m in models if b == a} for a in ("default", "second")}
    assert len(ids["default"]) == len(ids["second"]) == 12 and not ids["default"] & ids["second"]


def test_each_source_account_uploads_to_the_allyy_account_its_target_names(
    accounts: dict[str, Any], sandbox: Sandbox, data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = "recreativ/campaign_statistics"
    common = {"dataset": dataset, "dataSetId": "0e6c1a4b-8f2d-4b7a-9c35-1d2e3f4a5b6c"}
    config = tmp_path / "uploads.json"
    config.write_text(
        json.dumps(
            {
                "uploads": [
                    {**common, "datasourceId": "7f1d2c3b-4a5e-4f60-8a71-92b3c4d5e6f7", "format": "csv",
                     "account": "brand"},
                    {**common, "datasourceId": "a2b3c4d5-e6f7-4809-9a1b-2c3d4e5f6a7b", "format": "json",
                     "account": "retail", "allyyAccount": "second"},
                ]
            }
        )
    )  # fmt: skip
    monkeypatch.setenv("VENDORFLOW_ALLYY_UPLOADS", str(config))
    for tenant in ("allyy", "allyy-b"):
        sandbox.configure(tenant, processing_seconds=0.2)
    statistics = run("recreativ_statistics", ["brand.campaign_statistics", "retail.campaign_statistics"])
    assert set(states(statistics).values()) == {"success"}, states(statistics)

    dag = the_dag("allyy_upload")
    for task in dag.tasks:
        if task.task_id.endswith(".upload"):
            task.poll_interval = 0.2
    upload = dag.test(logical_date=logical_date_for(dag, DAY), run_conf={"partitions": [f"{dataset}/dt={DAY}"]})
    assert set(states(upload).values()) == {"success"}, states(upload)

    published = {a: sorted(str(c) for b, c in rows(data_root, dataset, "account, campaign_id") if b == a)
                 for a in ("brand", "retail")}  # fmt: skip
    for tenant, source, fmt in (("", "brand", "csv"), ("b", "retail", "json")):
        arrived = sandbox._call("GET", "/_sandbox/allyy/uploads", params={"tenant": tenant})
        assert [u["format"] for u in arrived] == [fmt], f"one upload to Allyy tenant {tenant!r}"
        sent = sorted(str(r["campaign_id"]) for r in arrived[0]["rows"])
        assert sent == published[source] and sent, f"{source}'s rows, and only those"
        assert {r["account"] for r in arrived[0]["rows"]} == {source}
    ledger = sorted(rows(data_root, "allyy/uploads", "account, source_account, dataset, state"))
    assert ledger == [("default", "brand", dataset, "finished"), ("second", "retail", dataset, "finished")]
