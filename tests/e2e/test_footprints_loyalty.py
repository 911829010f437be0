"""footprints_loyalty end to end through Airflow, every row checked against an independent reading of the API
(plain requests, ``POST /api/loyaltyCode/list`` paged by hand to ``totalResults``, its own HMAC)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from include.sandbox.control import Sandbox
from tests.e2e.test_footprints_leads import DAY, Api, instant, keyed, money, run_dag

pytestmark = pytest.mark.e2e
CAMPAIGN_COLUMNS = (
    "campaign_id, internal_id, name, type, start_date, end_date, expire_codes_date, location_id, active, "
    "loyalty_type, budget, created_at"
)
CODE_COLUMNS = (
    "code, status, campaign_internal_id, campaign_name, client_id, client_email_hmac, client_phone_hmac, "
    "prize_name, prize_points, hostess_id"
)


@pytest.fixture
def footprints(sandbox: Sandbox, connect, data_root: Path, state_dir: Path, airflow_db: None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return connect("footprints")


def expected(api: Api) -> dict[str, list[tuple]]:
    token = {"access_token": api.token}
    campaigns = api.call("GET", "/api/loyaltyCode/campaigns", params=token).json()["campaigns"]
    active = {
        c["internalId"] for c in api.call("GET", "/api/loyaltyCode/active-campaigns", params=token).json()["campaigns"]
    }
    codes: list[dict[str, Any]] = []
    page = 1
    while True:
        body = api.call("POST", "/api/loyaltyCode/list", params=token, data={"page": page}).json()
        codes.extend(body["clients"])
        if len(codes) >= body["totalResults"]:
            break
        page += 1
    return {
        "loyalty_campaigns": sorted(
            (
                c["_id"],
                c["internalId"],
                c["name"],
                c["type"],
                instant(c["startDate"]),
                instant(c["endDate"]),
                instant(c["expireCodesDate"]),
                c["locationId"],
                c["internalId"] in active,
                c["loyaltySettings"]["type"],
                money(c["budget"]),
                instant(c["createdAt"]),
            )
            for c in campaigns
        ),
        "loyalty_codes": sorted(
            (
                c["code"],
                c["status"],
                c["campaign"]["internalId"],
                c["campaign"]["name"],
                (c["client"] or {}).get("_id"),
                keyed((c["client"] or {}).get("userEmail"), "email"),
                keyed((c["client"] or {}).get("userPhone"), "phone"),
                c["prize"]["name"],
                c["prize"]["pointsValue"],
                (c.get("hostess") or {}).get("_id"),
            )
            for c in codes
        ),
    }


def written(data_root: Path, dataset: str, columns: str) -> list[tuple]:
    glob = f"{data_root}/footprints/{dataset}/*/*.parquet"
    return sorted(
        duckdb.sql(
            f"select {columns} from read_parquet('{glob}', hive_partitioning=true) where dt = '{DAY}'"
        ).fetchall()
    )


def test_campaigns_and_every_code_are_written_and_a_duplicated_code_is_quarantined(
    footprints: dict[str, Any], sandbox: Sandbox, data_root: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert run_dag("footprints_loyalty").state == "success"
    want = expected(Api(footprints))
    assert written(data_root, "loyalty_campaigns", CAMPAIGN_COLUMNS) == want["loyalty_campaigns"]
    codes = written(data_root, "loyalty_codes", CODE_COLUMNS)
    assert codes == want["loyalty_codes"] and len(codes) > 500  # many pages of 50
    assert {c[1] for c in codes} == {"associated", "redeemed", "blocked"}
    assert any(c[4] is None for c in codes) and any(
        c[9] is None for c in codes
    )  # blocked codes without client, no hostess
    assert {c[8] for c in want["loyalty_campaigns"]} == {True, False}

    # The vendor's paging serves a code twice: more rows than its totalResults, the key broken; quarantined.
    published = data_root / f"footprints/loyalty_codes/dt={DAY}/data.parquet"
    before = published.read_bytes()
    capfd.readouterr()
    sandbox.fault("footprints", "malformed", variant="duplicate", path="/api/loyaltyCode/list", after=3)
    run = run_dag("footprints_loyalty")
    assert run.state == "failed"
    assert {ti.task_id: ti.state for ti in run.get_task_instances()} == {
        "loyalty_campaigns": "success",
        "loyalty_codes": "failed",
    }
    assert published.read_bytes() == before
    assert len(list((data_root / f"_quarantine/footprints/loyalty_codes/dt={DAY}").glob("*/validation.json"))) == 1
    log = "".join(capfd.readouterr())
    assert (
        "expect_compound_columns_to_be_unique(column_list=['campaign_internal_id', 'code']): 2 unexpected values" in log
    )
    assert f"expect_table_row_count_to_equal(value={len(codes)}): observed {len(codes) + 1}" in log
