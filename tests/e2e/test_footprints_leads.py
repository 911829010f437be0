"""footprints_leads end to end through Airflow, every row checked against an independent reading of the API.

The oracle below is a second implementation of the documented Footprints API:
plain ``requests``, its own credential, paging by ``pageSize=100`` to the first
empty page, its own flattening and its own HMAC of the normalised e-mail and
phone. It shares no code with the hook, the dataset declarations or the pipeline.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from include.sandbox.control import Sandbox
from tests.dagruns import logical_date_for
from tests.oracles.footprints import Oracle as Api

pytestmark = pytest.mark.e2e
DAY = date(2024, 3, 2)  # a Saturday: a busy day, far more leads than the server's page-size cap
HMAC_KEY = os.environ["AIRFLOW_VAR_PII_HMAC_KEY"].encode()
REFERENCE = {
    "offers": ("/api/offer", "offer_id, name, price, external_id, offer_category_id, offer_category_name"),
    "skus": ("/api/sku", "sku_id, name, price, external_id, quantity, offer_id, offer_name"),
    "catalogues": ("/api/offerCategory", "catalogue_id, name"),
    "locations": ("/api/location", "location_id, name, description, address, area_id, coords, created_at"),
    "channels": ("/api/channels", "channel_id, name, media_type"),
    "offline_campaigns": (
        "/api/offlineCampaign",
        "offline_campaign_id, location_id, name, description, type, budget, start_date, end_date, created_at",
    ),
}
LEAD_COLUMNS = (
    "lead_id, status, created_at, updated_at, status_changed_at, client_id, location_id, offer_id, offer_name, "
    "offer_price, "
    "offer_category_id, offer_category_name, sku_id, sku_name, sku_price, sku_external_id, channel_id, consultant_id, "
    "offline_campaign_id, industry_id, user_email_hmac, user_phone_hmac, user_country, user_family_details, "
    "user_income, "
    "agree_to_collect, agree_tandc, is_adult, is_multipart, is_complete, action_required, device_type"
)


@pytest.fixture
def footprints(sandbox: Sandbox, connect, data_root: Path, state_dir: Path, airflow_db: None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return connect("footprints")


def run_dag(dag_id: str = "footprints_leads", day: date = DAY, tasks: list[str] | None = None) -> Any:
    """One run through Airflow (``tasks``: only those, for the phases of a test that need no more)."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags[dag_id]
    if tasks:
        dag = dag.partial_subset(tasks, include_upstream=False)
    for task in dag.tasks:
        task.retries = 0  # a failure should fail the run now, not in five minutes
    return dag.test(logical_date=logical_date_for(dag, day))


# -- the independent oracle -------------------------------------------------------------


def instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.0001"))


def keyed(value: str | None, kind: str) -> str | None:
    if value is None:
        return None
    text = value.strip().lower() if kind == "email" else re.sub(r"\D", "", value)
    return hmac.new(HMAC_KEY, text.encode(), hashlib.sha256).hexdigest() if text else None


def expected_leads(api: Api, day: date) -> list[tuple]:
    rows = []
    for r in api.leads(day):
        offer, sku, consultant = r.get("offer") or {}, r.get("sku") or {}, r.get("consultant") or {}
        income = r.get("userIncome")
        rows.append(
            (
                r["_id"],
                r["status"],
                instant(r["createdAt"]),
                instant(r.get("updatedAt")),
                instant(r.get("timestampStatusChange")),
                r.get("clientId"),
                r.get("locationId"),
                r.get("offerId"),
                offer.get("name"),
                money(offer.get("price")),
                r.get("offerCategoryId"),
                r.get("offerCategory"),
                sku.get("_id"),
                sku.get("name"),
                money(sku.get("price")),
                r.get("skuExternalId"),
                r.get("channelId"),
                consultant.get("_id"),
                r.get("offlineCampaignId"),
                r.get("industryId"),
                keyed(r.get("userEmail"), "email"),
                keyed(r.get("userPhone"), "phone"),
                r.get("userCountry"),
                r.get("userFamilyDetails"),
                float(income) if income else None,
                r.get("agreeToCollect"),
                r.get("agreeTandc"),
                r.get("isAdult"),
                r.get("isMultipart"),
                r.get("isComplete"),
                r.get("actionRequired"),
                r.get("deviceType"),
            )
        )
    return sorted(rows)


def expected_reference(api: Api, name: str) -> list[tuple]:
    records = api.pages(REFERENCE[name][0])
    if name == "offers":
        rows = [
            (
                r["_id"],
                r["name"],
                money(r["price"]),
                r["externalId"],
                r["offerCategory"]["_id"],
                r["offerCategory"]["name"],
            )
            for r in records
        ]
    elif name == "skus":
        rows = [
            (
                r["_id"],
                r["name"],
                money(r["price"]),
                r["externalId"],
                r["quantity"],
                r["offer"]["_id"],
                r["offer"]["name"],
            )
            for r in records
        ]
    elif name == "catalogues":
        rows = [(r["_id"], r["name"]) for r in records]
    elif name == "locations":
        rows = [
            (
                r["_id"],
                r["name"],
                r["description"],
                r["address"],
                r["areaId"],
                str(r["coords"]).replace(" ", ""),
                instant(r["createdAt"]),
            )
            for r in records
        ]
    elif name == "channels":
        rows = [(r["_id"], r["name"], r["mediaType"]) for r in records]
    else:
        rows = [
            (
                r["_id"],
                r["locationId"],
                r["name"],
                r["description"],
                r["type"],
                money(r["budget"]),
                instant(r["startDate"]),
                instant(r["endDate"]),
                instant(r["createdAt"]),
            )
            for r in records
        ]
    return sorted(rows)


def written(data_root: Path, dataset: str, columns: str, day: date = DAY) -> list[tuple]:
    """Read the way the README tells analysts to: DuckDB over the hive-partitioned glob."""
    glob = f"{data_root}/footprints/{dataset}/*/*.parquet"
    rows = duckdb.sql(
        f"select {columns} from read_parquet('{glob}', hive_partitioning=true) where dt = '{day}'"
    ).fetchall()
    if dataset == "locations":  # coords is kept as JSON text
        rows = [(*r[:5], r[5].replace(" ", ""), r[6]) for r in rows]
    return sorted(rows)


# -- tests ------------------------------------------------------------------------------


def test_the_dag_writes_exactly_the_vendors_rows_a_rerun_replaces_them_and_duplicates_are_quarantined(
    footprints: dict[str, Any],
    data_root: Path,
    sandbox: Sandbox,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The run's own day only: the lookback has its own test below.
    monkeypatch.setenv(
        "AIRFLOW_VAR_LOOKBACK_DAYS", json.dumps({"footprints/leads": 0, "footprints/lead_status_changes": 0})
    )
    started = datetime.now(timezone.utc)
    run = run_dag()
    assert run.state == "success"
    api = Api(footprints)
    leads = expected_leads(api, DAY)
    assert len(leads) > 1000  # many times the server's cap of 100 a page
    assert written(data_root, "leads", LEAD_COLUMNS) == leads
    assert any(r[12] is None for r in leads) and any(r[20] is None for r in leads)  # missing optional fields occur
    for name, (_, columns) in REFERENCE.items():
        assert written(data_root, name, columns) == expected_reference(api, name), name
    lead_calls = [
        r for r in sandbox.requests("footprints") if r["path"] == "/api/lead" and "pageSize=500" in r["query"]
    ]
    assert all("access_token=" in r["query"] for r in lead_calls)
    schema = {
        c[0]: c[1]
        for c in duckdb.sql(
            f"describe select * from read_parquet('{data_root}/footprints/leads/*/*.parquet')"
        ).fetchall()
    }
    assert schema["created_at"] == "TIMESTAMP WITH TIME ZONE" and schema["offer_price"] == "DECIMAL(18,4)"
    assert "user_email" not in schema and "user_first_name" not in schema and schema["user_email_hmac"] == "VARCHAR"
    extracted = duckdb.sql(
        f"select min(_extracted_at), max(_extracted_at) from read_parquet('{data_root}/footprints/leads/*/*.parquet')"
    ).fetchall()[0]
    assert started <= extracted[0] <= extracted[1] <= datetime.now(timezone.utc)

    assert run_dag().state == "success"  # the same day again
    assert written(data_root, "leads", LEAD_COLUMNS) == leads
    files = sorted(f.relative_to(data_root).as_posix() for f in (data_root / "footprints").rglob("*.parquet"))
    assert files == sorted(
        f"footprints/{d}/dt={DAY}/data.parquet" for d in ("leads", "lead_status_changes", *REFERENCE)
    )

    # Then the vendor's paging serves a lead twice: quarantined, nothing published over the good partition.
    published = data_root / f"footprints/leads/dt={DAY}/data.parquet"
    before = published.read_bytes()
    capfd.readouterr()
    sandbox.fault("footprints", "malformed", variant="duplicate", path="/api/lead", query="page=3&", count=1)
    run = run_dag(tasks=["leads", "offers"])
    assert run.state == "failed"
    assert {ti.task_id: ti.state for ti in run.get_task_instances()} == {"leads": "failed", "offers": "success"}
    assert published.read_bytes() == before
    quarantined = list((data_root / f"_quarantine/footprints/leads/dt={DAY}").glob("*/validation.json"))
    assert len(quarantined) == 1 and (quarantined[0].parent / "data.parquet").exists()
    output = capfd.readouterr()
    log = output.out + output.err
    assert "expect_column_values_to_be_unique(column='lead_id'): 2 unexpected values" in log
    assert "expect_table_row_count_to_equal" not in log  # the count of what came matches: only the key broke


# -- data that changes after its day --------------------------------------------------------

LATER_DAY = date(2024, 3, 14)  # a Thursday: its 7-day lookback reaches back to 2024-03-07


def status_clock(sandbox: Sandbox, day: date) -> None:
    """The sandbox's leads as they are at the end of ``day`` (about 30% become customers 1-6 days after)."""
    sandbox.configure("footprints", status_clock=f"{day.isoformat()}T23:59:59Z")


def manifest_run(data_root: Path, dataset: str, day: date) -> str:
    import pyarrow.parquet as pq

    metadata = pq.read_schema(data_root / f"footprints/{dataset}/dt={day}/data.parquet").metadata
    return json.loads(metadata[b"vendorflow.manifest"])["run_id"]


def status_rows(data_root: Path, day: date) -> set[tuple]:
    glob = f"{data_root}/footprints/lead_status_changes/*/*.parquet"
    return set(
        duckdb.sql(
            f"select lead_id, status, status_changed_at from read_parquet('{glob}', hive_partitioning=true) "
            f"where dt = '{day}'"
        ).fetchall()
    )


def test_a_later_run_republishes_the_days_whose_leads_changed_and_keeps_every_status(
    footprints: dict[str, Any], data_root: Path, sandbox: Sandbox
) -> None:
    api = Api(footprints)
    first = LATER_DAY - timedelta(days=3)
    window = [first - timedelta(days=n) for n in range(7, -1, -1)]
    status_clock(sandbox, first)
    assert run_dag(day=first, tasks=["leads", "lead_status_changes"]).state == "success"
    before = {day: expected_leads(api, day) for day in window}
    for day in window:  # the run's own day and its 7 days of lookback, each exactly as the vendor has it
        assert written(data_root, "leads", LEAD_COLUMNS, day) == before[day], day

    # Three days later, leads of those days have become customers; the run of LATER_DAY looks back 7 days.
    status_clock(sandbox, LATER_DAY)
    assert run_dag(day=LATER_DAY, tasks=["leads", "lead_status_changes"]).state == "success"
    changed_leads = 0
    for day in [LATER_DAY - timedelta(days=n) for n in range(7, -1, -1)]:
        now = expected_leads(api, day)
        assert written(data_root, "leads", LEAD_COLUMNS, day) == now, day  # current status and status_changed_at
        if day not in before:
            continue
        old = {(r[0], r[1], r[4]) for r in before[day]}
        new = {(r[0], r[1], r[4]) for r in now}
        history = status_rows(data_root, day)
        assert old | new == history, day  # both the old and the new status of every changed lead
        changed = {lead for lead, *_ in new - old}
        changed_leads += len(changed)
        assert all({s for lead, s, _ in history if lead == c} >= {"customer"} for c in changed)
        assert all(len({s for lead, s, _ in history if lead == c}) == 2 for c in changed)
    assert changed_leads > 50  # the vendor did change many of them

    # The same run again: nothing changed at the vendor, so the lookback days are left as published.
    runs = {day: manifest_run(data_root, "leads", day) for day in window if day >= LATER_DAY - timedelta(days=7)}
    assert run_dag(day=LATER_DAY, tasks=["leads", "lead_status_changes"]).state == "success"
    for day, run_id in runs.items():
        assert manifest_run(data_root, "leads", day) == run_id, f"{day} was republished although unchanged"
