"""The Recreativ hook against the sandbox over real HTTP: endpoints, auth, faults, the shared budget."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests

from include.sandbox.control import Sandbox
from vendorflow.errors import VendorAPIError, VendorResponseError
from vendorflow.http.concurrency import bounded_map
from vendorflow.pipeline.run import run_dataset
from vendorflow.pipeline.storage import Lake
from vendorflow.vendors.recreativ.datasets import CAMPAIGNS
from vendorflow.vendors.recreativ.hook import RecreativHook

pytestmark = pytest.mark.integration
DAY = date(2024, 3, 1)
FAST_RETRY = {"backoff_seconds": 0.01, "max_backoff_seconds": 0.05}


@pytest.fixture
def conn(connect, state_dir) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return connect("recreativ", **FAST_RETRY)


def raw(
    conn: dict[str, Any], path: str, params: dict[str, Any] | None = None, accept: str = "application/json"
) -> requests.Response:
    """The sandbox asked directly, without our hook: the independent view of the data.

    It uses a token of its own, so it neither spends nor is refused by the hook's budget.
    """
    token = conn["password"] if conn["password"] == "wrong" else conn["password"] + "-oracle"
    response = requests.get(
        conn["host"] + path, params=params, headers={"Auth-Token": token, "Accept": accept}, timeout=10
    )
    assert response.status_code in (200, 401), response.text
    return response


def test_every_documented_read_endpoint(conn: dict[str, Any]) -> None:
    hook = RecreativHook()
    assert hook.me() == raw(conn, "/me").json()
    assert hook.users() == raw(conn, "/advertiser/users").json()
    assert (
        hook.user(2, expand="campaigns")["campaigns"]
        == raw(conn, "/advertiser/users/2", {"expand": "campaigns"}).json()["campaigns"]
    )
    assert hook.site_categories() == raw(conn, "/webmaster/categories").json()
    assert hook.sites() == raw(conn, "/webmaster/sites").json()
    assert (
        hook.site(10, expand="blocks")["blocks"]
        == raw(conn, "/webmaster/sites/10", {"expand": "blocks"}).json()["blocks"]
    )
    assert hook.block(100) == raw(conn, "/webmaster/blocks/100").json()
    assert hook.campaign_categories() == raw(conn, "/advertiser/categories").json()
    campaigns = hook.campaigns()
    assert campaigns == raw(conn, "/advertiser/campaigns").json() and len(campaigns) == 50
    assert [c["id"] for c in hook.campaigns(ids=[1002, 1005])] == [1002, 1005]
    assert hook.campaign(1001) == campaigns[0]
    offers = hook.campaign_offers(1001)
    assert offers and all(o["campaignId"] == 1001 for o in offers)
    assert hook.offer(offers[0]["id"]) == offers[0]
    stats = hook.campaign_statistics(DAY, DAY)
    assert (
        stats
        == raw(
            conn,
            "/advertiser/statistics",
            {"scope": "campaigns", "filter[dateFrom]": "2024-03-01", "filter[dateTo]": "2024-03-01"},
        ).json()
    )
    assert {s["date"] for s in hook.campaign_statistics("2024-03-01", "2024-03-03", ids=[1001])} <= {
        "2024-03-01",
        "2024-03-02",
        "2024-03-03",
    }
    by_campaign = hook.offer_statistics(day=DAY, campaign_id=1001)
    assert {s["offerId"] for s in by_campaign} <= {o["id"] for o in offers}
    one_offer = hook.offer_statistics(date_from=DAY, date_to=DAY, offer_id=offers[0]["id"])
    assert all(s["offerId"] == offers[0]["id"] for s in one_offer)
    assert "filter[campaignId]=1001" in by_campaign.source


def test_yii2_paged_lists_are_read_to_the_end(sandbox: Sandbox, conn: dict[str, Any]) -> None:
    sandbox.configure("recreativ", page_size=7)
    first_page = raw(conn, "/advertiser/campaigns")
    assert len(first_page.json()) == 7 and first_page.headers["X-Pagination-Page-Count"] == "8"
    campaigns = RecreativHook().campaigns()
    assert [c["id"] for c in campaigns] == list(range(1001, 1051))


def test_xml_is_served_when_asked_and_json_otherwise(conn: dict[str, Any]) -> None:
    as_json = raw(conn, "/advertiser/campaigns", {"filter[id]": "1001"}).json()
    as_xml = ET.fromstring(raw(conn, "/advertiser/campaigns", {"filter[id]": "1001"}, accept="application/xml").content)
    assert as_xml.tag == "response"
    item = as_xml.find("item")
    assert (
        item is not None
        and item.findtext("id") == str(as_json[0]["id"])
        and item.findtext("title") == as_json[0]["title"]
    )


def test_a_bad_token_gets_the_documented_401(connect, state_dir) -> None:  # type: ignore[no-untyped-def]
    conn = connect("recreativ")
    assert raw({**conn, "password": "wrong"}, "/me").json() == {
        "name": "Unauthorized",
        "message": "You are requesting with an invalid credential.",
        "code": 0,
        "status": 401,
    }
    os.environ["AIRFLOW_CONN_RECREATIV_DEFAULT"] = json.dumps({**conn, "password": "wrong-token"})
    ok, message = RecreativHook().test_connection()
    assert not ok and "HTTP 401" in message and "invalid credential" in message and "wrong-token" not in message
    with pytest.raises(VendorAPIError, match="Recreativ GET /me: HTTP 401"):
        RecreativHook().me()


def test_test_connection_says_who_we_are(conn: dict[str, Any]) -> None:
    assert RecreativHook().test_connection() == (True, "Connected to Recreativ as sandbox (user 1)")


def test_campaign_filter_needs_a_date(conn: dict[str, Any]) -> None:
    hook = RecreativHook()
    with pytest.raises(ValueError, match="requires filter\\[date\\]"):
        hook.offer_statistics(campaign_id=1001)
    with pytest.raises(VendorAPIError, match="HTTP 400: Bad Request; filter\\[date\\] is required"):
        hook._list("/advertiser/statistics", {"scope": "offers", "filter[campaignId]": 1001})


def test_misconfigured_connections_are_named(connect, state_dir, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    conn = connect("recreativ")
    monkeypatch.setenv("AIRFLOW_CONN_RECREATIV_DEFAULT", json.dumps({**conn, "password": None}))
    with pytest.raises(Exception, match="Connection 'recreativ_default' \\(Recreativ\\): the password field is empty"):
        RecreativHook().me()
    monkeypatch.setenv("AIRFLOW_CONN_RECREATIV_DEFAULT", json.dumps({**conn, "extra": {"requests_per_second": "fast"}}))
    with pytest.raises(Exception, match="extra 'requests_per_second' must be a number, not 'fast'"):
        RecreativHook().me()


def _requests(sandbox: Sandbox, path: str | None = None, token: str | None = None) -> list[dict[str, Any]]:
    """What the sandbox saw, for one path and/or one token (requests of earlier tests may still land)."""
    return [
        r
        for r in sandbox.requests("recreativ")
        if (path is None or r["path"] == path) and (token is None or r["token"] == token)
    ]


def _throttled(requests_seen: list[dict[str, Any]]) -> int:
    return sum(1 for r in requests_seen if r["status"] == 429 and not r["fault"])


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_throttling_and_server_errors_are_retried(sandbox: Sandbox, conn: dict[str, Any], status: int) -> None:
    sandbox.fault("recreativ", "status", status=status, retry_after=0.3, path="/advertiser/campaigns", count=2)
    assert len(RecreativHook().campaigns()) == 50
    seen = _requests(sandbox, "/advertiser/campaigns", token=conn["password"])
    assert [r["status"] for r in seen] == [status, status, 200]
    assert seen[1]["t"] - seen[0]["t"] >= 0.3  # Retry-After honoured
    assert seen[2]["t"] - seen[1]["t"] >= 0.3


def test_dropped_connections_and_slow_answers_are_retried(sandbox: Sandbox, connect, state_dir) -> None:  # type: ignore[no-untyped-def]
    conn = connect("recreativ", timeout=0.5, **FAST_RETRY)
    sandbox.fault("recreativ", "drop", path="/advertiser/campaigns")
    sandbox.fault("recreativ", "slow", delay=2.0, path="/advertiser/categories")
    hook = RecreativHook()
    assert len(hook.campaigns()) == 50
    assert hook.campaign_categories()
    assert [r["status"] for r in _requests(sandbox, "/advertiser/campaigns", token=conn["password"])] == [
        200,
        200,
    ]  # the first cut short
    assert hook.client.retries == 2  # one after the drop, one after the read timeout


def test_retries_end_with_the_vendors_answer(sandbox: Sandbox, connect, state_dir) -> None:  # type: ignore[no-untyped-def]
    conn = connect("recreativ", retries=3, **FAST_RETRY)
    sandbox.fault("recreativ", "status", status=503, path="/me", count=10)
    with pytest.raises(VendorAPIError, match="Recreativ GET /me: HTTP 503: .*gave up after 3 attempts"):
        RecreativHook().me()
    assert len(_requests(sandbox, "/me", token=conn["password"])) == 3


@pytest.mark.parametrize(
    ("variant", "problem"),
    [
        ("html", "answered HTML instead of JSON"),
        ("xml", "answered XML instead of JSON"),
        ("truncated", "truncated JSON body"),
        ("not_a_list", "expected a JSON array of records, got dict"),
    ],
)
def test_malformed_answers_fail_with_vendor_endpoint_and_problem(
    sandbox: Sandbox, conn: dict[str, Any], variant: str, problem: str
) -> None:
    sandbox.fault("recreativ", "malformed", variant=variant, path="/advertiser/campaigns")
    with pytest.raises(VendorResponseError) as error:
        RecreativHook().campaigns()
    assert str(error.value).startswith("Recreativ GET /advertiser/campaigns: ")
    assert problem in str(error.value)


@pytest.mark.parametrize(
    ("variant", "field", "problem"),
    [
        ("wrong_type", "maxclicks", "field 'maxclicks' = 'not-a-int' is not an integer"),
        ("missing_key", "id", "field 'id' = '<missing>' is missing (the key is required)"),
    ],
)
def test_records_that_break_the_schema_publish_nothing(
    sandbox: Sandbox, conn: dict[str, Any], data_root: Path, variant: str, field: str, problem: str
) -> None:
    sandbox.fault("recreativ", "malformed", variant=variant, field=field, path="/advertiser/campaigns")
    lake = Lake(str(data_root))
    with pytest.raises(
        VendorResponseError, match=re.escape(f"Recreativ GET /advertiser/campaigns: record 0: {problem}")
    ):
        run_dataset(CAMPAIGNS, hook=RecreativHook(), dt=DAY, run_id="bad", lake=lake)
    assert lake.partitions("recreativ/campaigns") == []
    assert not list(data_root.rglob("*.parquet"))


def test_statistics_fan_out_stays_under_the_real_limit(sandbox: Sandbox, conn: dict[str, Any]) -> None:
    """25 requests on 4 threads against the sandbox's real 5 requests/s: not one 429."""
    hook = RecreativHook()
    results = list(bounded_map(lambda cid: hook.offer_statistics(day=DAY, campaign_id=cid), range(1001, 1026), 4))
    assert len(results) == 25
    seen = _requests(sandbox, token=conn["password"])
    assert len(seen) == 25 and _throttled(seen) == 0


WORKER = """
import sys
from datetime import date
sys.path[:0] = {paths!r}
from vendorflow.vendors.recreativ.hook import RecreativHook
hook = RecreativHook()
for cid in range(1001, 1016):
    hook.offer_statistics(day=date(2024, 3, 1), campaign_id=cid)
"""


def test_two_processes_share_one_budget(sandbox: Sandbox, conn: dict[str, Any]) -> None:
    root = Path(__file__).resolve().parents[2]
    code = WORKER.format(paths=[str(root), str(root / "plugins")])
    workers = [subprocess.Popen([sys.executable, "-c", code], env=os.environ.copy()) for _ in range(2)]
    assert [w.wait(timeout=60) for w in workers] == [0, 0]
    seen = _requests(sandbox, token=conn["password"])
    assert len(seen) == 30 and _throttled(seen) == 0


def test_over_the_limit_429s_are_the_fallback(sandbox: Sandbox, connect, state_dir) -> None:  # type: ignore[no-untyped-def]
    """A connection configured above the vendor's limit still gets every answer, through retries."""
    conn = connect("recreativ", requests_per_second=20, **FAST_RETRY)
    hook = RecreativHook()
    results = list(bounded_map(lambda cid: hook.offer_statistics(day=DAY, campaign_id=cid), range(1001, 1016), 4))
    assert len(results) == 15
    assert _throttled(_requests(sandbox, token=conn["password"])) > 0
