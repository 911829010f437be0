"""The Footprints hook against the sandbox over real HTTP: token grants, every read endpoint,
pagination past the unannounced page-size cap, faults, and secrets kept out of messages."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from include.sandbox.control import Sandbox
from tests.oracles.footprints import Oracle
from vendorflow.errors import ConfigError, VendorAPIError, VendorResponseError
from vendorflow.vendors.footprints.hook import FootprintsHook

pytestmark = pytest.mark.integration
BUSY_DAY = date(2024, 3, 2)  # the test sets its lead count
FAST_RETRY = {"backoff_seconds": 0.01, "max_backoff_seconds": 0.05}


@pytest.fixture
def conn(connect, state_dir) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return connect("footprints", **FAST_RETRY)


def lead_requests(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests("footprints") if r["path"] == "/api/lead"]


def tokens_issued(sandbox: Sandbox) -> dict[str, Any]:
    return sandbox._call("GET", "/_sandbox/footprints/tokens")


# -- authentication ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "grant",
    [
        {"grant_type": "client_credentials"},
        {"grant_type": "pin", "pin": "1234567890"},
        {"grant_type": "password", "username": "hostess", "user_password": "sandbox-pass"},
    ],
    ids=lambda g: g["grant_type"],
)
def test_each_grant_type_gets_a_token_and_reads(sandbox: Sandbox, connect, state_dir, grant: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    connect("footprints", **grant)
    hook = FootprintsHook()
    assert len(hook.channels()) == 7
    assert tokens_issued(sandbox)["by_grant"] == {grant["grant_type"]: 1}
    token_calls = [r for r in sandbox.requests("footprints") if r["path"] == "/api/token"]
    assert len(token_calls) == 1 and token_calls[0]["query"] == ""  # the grant went in the form body


def test_the_token_is_cached_shared_and_refreshed_once_after_a_401(sandbox: Sandbox, conn: dict[str, Any]) -> None:
    FootprintsHook().channels()
    FootprintsHook().offers()  # a second hook (another task) reuses the stored token
    assert tokens_issued(sandbox)["issued"] == 1
    sandbox._call("POST", "/_sandbox/footprints/revoke")
    assert len(FootprintsHook().channels()) == 7
    seen = [r for r in sandbox.requests("footprints") if r["path"] == "/api/channels"]
    assert [r["status"] for r in seen][-3:] == [200, 401, 200]
    assert tokens_issued(sandbox)["issued"] == 1  # one new token after the revocation


def test_bad_credentials_fail_with_the_vendors_message_and_no_secret(
    sandbox: Sandbox, connect, state_dir, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    conn = connect("footprints")
    monkeypatch.setenv("AIRFLOW_CONN_FOOTPRINTS_DEFAULT", json.dumps({**conn, "password": "wrong-secret-4711"}))
    ok, message = FootprintsHook().test_connection()
    assert not ok and "Footprints POST /api/token: HTTP 401: invalid_client; Client credentials are invalid" in message
    assert "wrong-secret-4711" not in message
    with pytest.raises(VendorAPIError, match="HTTP 401"):
        FootprintsHook().channels()


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (
            {"grant_type": "implicit"},
            "extra 'grant_type' must be one of client_credentials, pin, password, not 'implicit'",
        ),
        ({"grant_type": "pin"}, "extra 'pin' is required"),
        ({"grant_type": "pin", "pin": "12ab"}, "extra 'pin' must be digits"),
        ({"grant_type": "password", "username": "h"}, "extra 'user_password' is required"),
        ({"page_size": "lots"}, "extra 'page_size' must be a whole number, not 'lots'"),
    ],
)
def test_misconfigured_connections_are_named(connect, state_dir, extra: dict[str, str], problem: str) -> None:  # type: ignore[no-untyped-def]
    connect("footprints", **extra)
    with pytest.raises(
        ConfigError,
        match="Connection 'footprints_default' \\(Footprints\\): " + problem.replace("(", "\\(").replace(")", "\\)"),
    ):
        list(FootprintsHook().lead_pages(BUSY_DAY, BUSY_DAY))


def test_test_connection_names_the_grant(conn: dict[str, Any]) -> None:
    assert FootprintsHook().test_connection() == (
        True,
        "Connected to Footprints with grant client_credentials: 7 channels",
    )


# -- endpoints --------------------------------------------------------------------------


def test_every_read_endpoint_matches_the_api_read_directly(sandbox: Sandbox, conn: dict[str, Any]) -> None:
    oracle, hook = Oracle(conn), FootprintsHook()
    for method, path in [
        ("catalogues", "/api/offerCategory"),
        ("offers", "/api/offer"),
        ("skus", "/api/sku"),
        ("locations", "/api/location"),
        ("channels", "/api/channels"),
        ("offline_campaigns", "/api/offlineCampaign"),
    ]:
        got = getattr(hook, method)()
        assert got == oracle.pages(path), method
        assert got.total_records == len(got)
    assert len(hook.skus()) == 90 and hook.skus().total_pages == 5  # 20 a page: several pages
    assert hook.loyalty_campaigns() == oracle.get("/api/loyaltyCode/campaigns").json()["campaigns"]
    assert hook.active_loyalty_campaigns() == oracle.get("/api/loyaltyCode/active-campaigns").json()["campaigns"]
    codes = hook.loyalty_codes()
    assert codes == oracle.codes() and len(codes) == codes.total_records > 500
    one = hook.loyalty_campaigns()[1]["internalId"]
    assert hook.loyalty_codes(campaign_internal_id=one) == oracle.codes(campaignInternalId=one)
    assert hook.lead_action_types() == oracle.get("/api/lead/action-types").json()["data"]
    lead = hook.leads(date(2024, 3, 4), date(2024, 3, 4))[0]
    assert hook.lead_actions(lead["_id"]) == oracle.get(f"/api/lead/actions/{lead['_id']}").json()["data"]
    assert (
        hook.customer(email="client42@example.com", phone="0700000042")["_id"]
        == oracle.get("/api/client", userEmail="client42@example.com", userPhone="0700000042").json()["_id"]
    )
    with pytest.raises(
        VendorAPIError,
        match="Footprints GET /api/client\\?userEmail=nobody%40example.com&userPhone=1: HTTP 404: Client not found",
    ):
        hook.customer(email="nobody@example.com", phone="1")


@pytest.mark.parametrize("concurrency", [1, 4])
def test_leads_are_read_past_the_unannounced_page_size_cap(
    sandbox: Sandbox, connect, state_dir, concurrency: int
) -> None:  # type: ignore[no-untyped-def]
    sandbox.configure("footprints", leads_by_day={BUSY_DAY.isoformat(): 2345})  # cap 100: 24 pages
    conn = connect("footprints", page_size=500, concurrency=concurrency, **FAST_RETRY)
    pages = list(FootprintsHook().lead_pages(BUSY_DAY, BUSY_DAY))
    seen = lead_requests(sandbox)  # before the oracle adds its own
    leads = [r for p in pages for r in p]
    assert [p.number for p in pages] == list(range(1, 25)) and all(len(p) == 100 for p in pages[:-1])
    assert leads == Oracle(conn).leads(BUSY_DAY) and len(leads) == 2345
    assert all("pageSize=500" in r["query"] for r in seen)
    assert 25 <= len(seen) <= 25 + concurrency - 1  # to the first empty page, and at most a window past it


def test_an_announced_page_count_is_fetched_exactly(sandbox: Sandbox, connect, state_dir) -> None:  # type: ignore[no-untyped-def]
    sandbox.configure("footprints", leads_by_day={BUSY_DAY.isoformat(): 1001}, lead_headers=True)
    conn = connect("footprints", concurrency=3, **FAST_RETRY)
    pages = list(FootprintsHook().lead_pages(BUSY_DAY, BUSY_DAY))
    assert len(lead_requests(sandbox)) == 11
    assert [len(p) for p in pages] == [100] * 10 + [1]
    assert pages[0].total_records == 1001 and pages[0].total_pages == 11
    assert [r for p in pages for r in p] == Oracle(conn).leads(BUSY_DAY)


def test_a_day_without_leads_is_one_request(sandbox: Sandbox, conn: dict[str, Any]) -> None:
    sandbox.configure("footprints", leads_by_day={BUSY_DAY.isoformat(): 0})
    assert FootprintsHook().leads(BUSY_DAY, BUSY_DAY) == []
    assert len(lead_requests(sandbox)) == 1


# -- faults -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_throttling_and_server_errors_are_retried(sandbox: Sandbox, conn: dict[str, Any], status: int) -> None:
    sandbox.configure("footprints", leads_by_day={BUSY_DAY.isoformat(): 250})
    sandbox.fault("footprints", "status", status=status, retry_after=0.2, path="/api/lead", query="page=2", count=2)
    leads = FootprintsHook().leads(BUSY_DAY, BUSY_DAY, concurrency=1)
    assert len(leads) == 250
    page_two = [r for r in lead_requests(sandbox) if "page=2" in r["query"]]
    assert [r["status"] for r in page_two] == [status, status, 200]
    assert page_two[1]["t"] - page_two[0]["t"] >= 0.2  # Retry-After honoured


def test_dropped_connections_and_slow_answers_are_retried(sandbox: Sandbox, connect, state_dir) -> None:  # type: ignore[no-untyped-def]
    connect("footprints", timeout=0.5, **FAST_RETRY)
    sandbox.fault("footprints", "drop", path="/api/offer")
    sandbox.fault("footprints", "slow", delay=2.0, path="/api/sku")
    hook = FootprintsHook()
    assert len(hook.offers()) == 40 and len(hook.skus()) == 90
    assert hook.client.retries == 2


def test_retries_end_with_the_vendors_answer(sandbox: Sandbox, connect, state_dir) -> None:  # type: ignore[no-untyped-def]
    connect("footprints", retries=3, **FAST_RETRY)
    sandbox.fault("footprints", "status", status=503, path="/api/channels", count=10)
    with pytest.raises(
        VendorAPIError, match="Footprints GET /api/channels\\?page=1: HTTP 503: .*gave up after 3 attempts"
    ):
        FootprintsHook().channels()


@pytest.mark.parametrize(
    ("variant", "problem"),
    [
        ("html", "answered HTML instead of JSON"),
        ("xml", "answered XML instead of JSON"),
        ("truncated", "truncated JSON body"),
        ("not_a_list", "expected a JSON array of records, got dict"),
    ],
)
def test_malformed_answers_name_vendor_endpoint_and_problem(
    sandbox: Sandbox, conn: dict[str, Any], variant: str, problem: str
) -> None:
    sandbox.fault("footprints", "malformed", variant=variant, path="/api/lead")
    with pytest.raises(VendorResponseError) as error:
        list(FootprintsHook().lead_pages(BUSY_DAY, BUSY_DAY))
    message = str(error.value)
    assert message.startswith("Footprints GET /api/lead?startDate=2024-03-02&endDate=2024-03-02&pageSize=500&page=1: ")
    assert problem in message and "access_token" not in message


def test_an_announced_page_that_comes_back_empty_is_an_error(sandbox: Sandbox, conn: dict[str, Any]) -> None:
    sandbox.configure("footprints", leads_by_day={BUSY_DAY.isoformat(): 300}, lead_headers=True)
    sandbox.fault("footprints", "malformed", variant="empty_list", path="/api/lead", query="page=2")
    pages = FootprintsHook().lead_pages(BUSY_DAY, BUSY_DAY, concurrency=1)
    assert len(next(pages)) == 100
    with pytest.raises(VendorResponseError, match="page 2 is empty although the vendor announced 3 pages"):
        next(pages)


@pytest.mark.parametrize(
    ("variant", "field", "problem"),
    [
        ("wrong_type", "createdAt", "field 'createdAt' = 'not-a-str' is not an ISO 8601 instant"),
        ("missing_key", "_id", "field '_id' = '<missing>' is missing (the key is required)"),
    ],
)
def test_leads_that_break_the_schema_publish_nothing(
    sandbox: Sandbox,
    conn: dict[str, Any],
    data_root,
    variant: str,  # type: ignore[no-untyped-def]
    field: str,
    problem: str,
) -> None:
    from vendorflow.pipeline.run import run_dataset
    from vendorflow.pipeline.storage import Lake
    from vendorflow.vendors.footprints.datasets import LEADS

    sandbox.configure("footprints", leads_by_day={BUSY_DAY.isoformat(): 250})
    sandbox.fault("footprints", "malformed", variant=variant, field=field, path="/api/lead", query="page=2&")
    lake = Lake(str(data_root))
    with pytest.raises(VendorResponseError) as error:
        run_dataset(LEADS, hook=FootprintsHook(), dt=BUSY_DAY, run_id="bad", lake=lake)
    assert str(error.value) == (
        f"Footprints GET /api/lead?startDate=2024-03-02&endDate=2024-03-02&pageSize=500&page=2: record 0: {problem}"
    )
    assert lake.partitions("footprints/leads") == [] and not list(data_root.rglob("*.parquet"))
