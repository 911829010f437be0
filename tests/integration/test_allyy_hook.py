"""The Allyy hook and upload trigger against the sandbox over real HTTP: token, envelope, paging, uploads, faults."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from include.sandbox.allyy import CUSTOMER_ID, DEFAULT_DATASOURCES
from include.sandbox.control import Sandbox
from vendorflow.errors import ConfigError, VendorAPIError, VendorResponseError
from vendorflow.vendors.allyy.hook import AllyyHook, upload_state

pytestmark = pytest.mark.integration
FAST_RETRY = {"backoff_seconds": 0.01, "max_backoff_seconds": 0.05}
CSV_SOURCE, JSON_SOURCE = list(DEFAULT_DATASOURCES)
DATA_SET = DEFAULT_DATASOURCES[CSV_SOURCE]["dataSetId"]


@pytest.fixture
def conn(connect, state_dir) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return connect("allyy", **FAST_RETRY)


def oracle_token(conn: dict[str, Any]) -> str:
    response = requests.post(
        conn["host"] + "/api/authentication/connect/token",
        data={
            "grant_type": "client_credentials",
            "client_id": conn["login"] + "-oracle",
            "client_secret": "x",
            "scope": "allyy_api",
        },
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["access_token"]


def oracle(conn: dict[str, Any], path: str, **params: Any) -> Any:
    response = requests.get(
        conn["host"] + path, params=params, headers={"Authorization": f"Bearer {oracle_token(conn)}"}, timeout=10
    )
    response.raise_for_status()
    return response.json()


def token_requests(sandbox: Sandbox) -> int:
    return sum(1 for r in sandbox.requests("allyy") if r["path"].endswith("/connect/token") and r["status"] == 200)


def csv_file(tmp_path: Path, text: str = "campaign_id,views\n1001,5\n1002,7\n") -> Path:
    path = tmp_path / f"{uuid.uuid4().hex[:6]}.csv"
    path.write_text(text)
    return path


def uploads_arrived(sandbox: Sandbox) -> list[dict[str, Any]]:
    return sandbox._call("GET", "/_sandbox/allyy/uploads")


# --- token ---------------------------------------------------------------------------------------


def test_the_token_endpoint_takes_only_form_encoding(conn: dict[str, Any]) -> None:
    as_json = requests.post(
        conn["host"] + "/api/authentication/connect/token",
        timeout=10,
        json={
            "grant_type": "client_credentials",
            "client_id": conn["login"],
            "client_secret": "x",
            "scope": "allyy_api",
        },
    )
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
    assert oracle_token(conn)


def test_one_token_serves_every_hook_until_shortly_before_it_expires(sandbox: Sandbox, connect, state_dir) -> None:  # type: ignore[no-untyped-def]
    sandbox.configure("allyy", token_lifetime=63)
    connect("allyy", token_leeway_seconds=60, **FAST_RETRY)  # usable for 3 s (a loaded machine needs the margin)
    AllyyHook().models()
    AllyyHook().model(AllyyHook().models()[0]["id"])
    assert token_requests(sandbox) == 1  # three hooks, one token (cached in the shared store)
    issued = next(r["t"] for r in sandbox.requests("allyy") if r["path"].endswith("/connect/token"))
    time.sleep(max(0.0, issued + 3.1 - time.time()))  # the client counts from before `issued`
    AllyyHook().models()
    assert token_requests(sandbox) == 2  # renewed before Allyy would refuse it
    assert not any(r["status"] == 401 for r in sandbox.requests("allyy"))


def test_a_401_refreshes_the_token_once(sandbox: Sandbox, conn: dict[str, Any]) -> None:
    hook = AllyyHook()
    assert len(hook.models()) == 12
    sandbox._call("POST", "/_sandbox/allyy/expire-tokens")  # Allyy forgets every token it issued
    assert len(hook.models()) == 12
    assert token_requests(sandbox) == 2
    statuses = [r["status"] for r in sandbox.requests("allyy") if "/model_v2_1" in r["path"]]
    assert statuses == [200, 401, 200]

    # Refused again after the refresh: a clear error, not a loop.
    sandbox.fault("allyy", "status", status=401, path="/api/model", count=2)
    with pytest.raises(VendorAPIError, match="HTTP 401"):
        hook.models()
    assert token_requests(sandbox) == 3


def test_a_bad_secret_fails_test_connection_without_showing_it(
    sandbox: Sandbox, connect, state_dir, caplog, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    conn = connect("allyy", **FAST_RETRY)
    ok, message = AllyyHook().test_connection()
    assert ok and message == f"Connected to Allyy: customer {CUSTOMER_ID} has 12 models"
    conn["login"] = "not-a-sandbox-client"
    conn["password"] = "very-secret-value-123"
    monkeypatch.setenv("AIRFLOW_CONN_ALLYY_DEFAULT", json.dumps(conn))
    with caplog.at_level(logging.DEBUG):
        ok, message = AllyyHook().test_connection()
    assert not ok and "HTTP 400" in message and "invalid_client" in message
    assert "very-secret-value-123" not in message + caplog.text


def test_a_connection_without_customer_id_is_a_config_error(connect, state_dir) -> None:  # type: ignore[no-untyped-def]
    connect("allyy", customer_id="")
    with pytest.raises(ConfigError, match="extra 'customer_id' is required"):
        AllyyHook().models()


# --- models and the envelope -------------------------------------------------------------------


def test_models_are_read_to_the_total_whatever_take_allyy_allows(sandbox: Sandbox, connect, state_dir) -> None:  # type: ignore[no-untyped-def]
    sandbox.configure("allyy", models=27, max_take=4)  # Allyy silently caps take
    conn = connect("allyy", page_size=10, **FAST_RETRY)
    hook = AllyyHook()
    models = hook.models()
    queries = [r["query"] for r in sandbox.requests("allyy") if r["path"].endswith("/model_v2_1")]
    assert queries == [f"take=10&skip={skip}" for skip in range(0, 27, 4)]
    expected = {"data": oracle(conn, f"/api/model/v1.0/customer/{CUSTOMER_ID}/model_v2_1", take=4)["data"]}
    for skip in range(4, 27, 4):
        expected["data"] += oracle(conn, f"/api/model/v1.0/customer/{CUSTOMER_ID}/model_v2_1", take=4, skip=skip)[
            "data"
        ]
    assert [m["id"] for m in models] == [m["id"] for m in expected["data"]] and len(models) == 27
    assert hook.model(models[5]["id"]) == expected["data"][5]


def test_envelope_errors_become_the_exception_message(conn: dict[str, Any]) -> None:
    with pytest.raises(VendorAPIError) as raised:
        AllyyHook().model("no-such-model")
    assert raised.value.status == 404
    assert str(raised.value).endswith("HTTP 404: ModelNotFound: Model no-such-model was not found.")


@pytest.mark.parametrize(
    ("variant", "field", "problem"),
    [
        ("html", None, "answered HTML instead of JSON"),
        ("xml", None, "answered XML instead of JSON"),
        ("truncated", None, "truncated JSON body"),
        ("not_a_list", None, "expected the envelope {meta, data}, got ['unexpected']"),
        ("wrong_type", "totalItemsCount", "totalItemsCount is 'not-a-int'"),
    ],
)
def test_a_broken_answer_names_allyy_the_endpoint_and_the_problem(
    sandbox: Sandbox, conn: dict[str, Any], variant: str, field: str | None, problem: str
) -> None:
    sandbox.fault("allyy", "malformed", variant=variant, field=field, path="/api/model", count=10)
    with pytest.raises(VendorResponseError) as raised:
        AllyyHook().models()
    assert str(raised.value).startswith(
        f"Allyy GET /api/model/v1.0/customer/{CUSTOMER_ID}/model_v2_1?take=100&skip=0: "
    )
    assert problem in str(raised.value)


def test_a_missing_or_mistyped_field_fails_the_models_snapshot(
    sandbox: Sandbox, conn: dict[str, Any], data_root: Path
) -> None:
    from datetime import date

    from vendorflow.errors import ValidationFailed
    from vendorflow.pipeline.run import run_dataset
    from vendorflow.vendors.allyy.datasets import MODELS

    sandbox.fault("allyy", "malformed", variant="missing_key", field="customerId", path="/api/model", count=1)
    with pytest.raises(VendorResponseError, match="field 'customerId'"):
        run_dataset(MODELS, hook=AllyyHook(), dt=date(2024, 3, 1), run_id="t")
    sandbox.fault("allyy", "malformed", variant="duplicate", path="/api/model", count=1)
    with pytest.raises(ValidationFailed, match="model_id"):
        run_dataset(MODELS, hook=AllyyHook(), dt=date(2024, 3, 1), run_id="t")
    assert not (data_root / "allyy/models").exists()


@pytest.mark.parametrize(
    ("kind", "spec"),
    [
        ("status", {"status": 503}),
        ("status", {"status": 429, "retry_after": 0.05}),
        ("drop", {}),
        ("slow", {"delay": 1.5}),
    ],
)
def test_transient_faults_are_retried(sandbox: Sandbox, connect, state_dir, kind: str, spec: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    connect("allyy", timeout=0.5, **FAST_RETRY)
    sandbox.fault("allyy", kind, path="/api/model", count=2, **spec)
    hook = AllyyHook()
    assert len(hook.models()) == 12
    assert hook.client.retries == 2


def test_the_shared_budget_keeps_under_allyys_limit(sandbox: Sandbox, connect, state_dir) -> None:  # type: ignore[no-untyped-def]
    """Allyy publishes no limit, so a deployment sets one below what it observed: the hook keeps to
    it. (The 3% margin at a vendor's exact limit is measured by the benchmarks, not asserted here,
    where a loaded test machine could delay one request past it.)"""
    sandbox.configure("allyy", rate_limit=20)
    connect("allyy", requests_per_second=15, **FAST_RETRY)
    hook = AllyyHook()
    started = time.monotonic()
    for _ in range(30):
        next(hook.models_pages())
    assert sandbox.stats("allyy")["throttled"] == 0
    assert time.monotonic() - started >= 29 / 15  # paced by the budget (a lower bound: load only slows it)


# --- uploads -------------------------------------------------------------------------------------


def test_a_csv_upload_arrives_as_its_rows_and_finishes(sandbox: Sandbox, conn: dict[str, Any], tmp_path: Path) -> None:
    sandbox.configure("allyy", processing_seconds=0.3)
    hook = AllyyHook()
    upload = hook.upload_file(DATA_SET, CSV_SOURCE, "csv", csv_file(tmp_path))
    assert upload_state(upload) == "processing" and upload["sizeBytes"] == len("campaign_id,views\n1001,5\n1002,7\n")
    [arrived] = uploads_arrived(sandbox)
    assert arrived["id"] == upload["id"] and arrived["rows"] == [
        {"campaign_id": "1001", "views": "5"},
        {"campaign_id": "1002", "views": "7"},
    ]
    [post] = [r for r in sandbox.requests("allyy") if r["method"] == "POST" and r["path"].endswith("/upload")]
    assert (
        post["path"] == f"/api/data/v1.0/customer/{CUSTOMER_ID}/dataset/{DATA_SET}/datasource/csv/{CSV_SOURCE}/upload"
    )
    time.sleep(0.35)
    status = hook.upload_status(DATA_SET, CSV_SOURCE, upload["id"])
    assert upload_state(status) == "finished" and status["processedLines"] == 2


def test_the_uploads_list_is_paged_with_take_and_skip(sandbox: Sandbox, connect, state_dir, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sandbox.configure("allyy", max_take=3)
    connect("allyy", **FAST_RETRY)
    hook = AllyyHook()
    sent = [hook.upload_file(DATA_SET, CSV_SOURCE, "csv", csv_file(tmp_path))["id"] for _ in range(7)]
    listed = hook.uploads(DATA_SET, CSV_SOURCE)
    assert [u["id"] for u in listed] == sent[::-1]  # newest first
    assert hook.upload_status(DATA_SET, CSV_SOURCE, sent[0])["id"] == sent[0]  # found on the last page


@pytest.mark.parametrize(
    ("fmt", "content", "message"),
    [
        ("csv", "a,b\n1,2,3\n", "file: line 2 has 3 fields, the header has 2"),
        ("csv", "", "file: the CSV file is empty: a header row is required"),
        ("json", '{"not": "an array"}', "file: the JSON file must be an array of objects"),
        ("json", '[{"a": 1}', "file: the JSON file is malformed"),
    ],
)
def test_a_malformed_file_fails_with_allyys_validation_message(
    sandbox: Sandbox, conn: dict[str, Any], tmp_path: Path, fmt: str, content: str, message: str
) -> None:
    path = tmp_path / f"bad.{fmt}"
    path.write_text(content)
    with pytest.raises(VendorAPIError) as raised:
        AllyyHook().upload_file(DATA_SET, CSV_SOURCE if fmt == "csv" else JSON_SOURCE, fmt, path)  # type: ignore[arg-type]
    assert raised.value.status == 400 and message in raised.value.vendor_message
    assert uploads_arrived(sandbox) == []


def test_the_sandbox_refuses_other_bodies_with_a_400_envelope(conn: dict[str, Any]) -> None:
    url = conn["host"] + f"/api/data/v1.0/customer/{CUSTOMER_ID}/dataset/{DATA_SET}/datasource/csv/{CSV_SOURCE}/upload"
    headers = {"Authorization": f"Bearer {oracle_token(conn)}"}
    no_part = requests.post(url, headers=headers, files={"data": ("a.csv", b"a\n1\n", "text/csv")}, timeout=10)
    raw_body = requests.post(url, headers={**headers, "Content-Type": "text/csv"}, data=b"a\n1\n", timeout=10)
    wrong_format = requests.post(
        url.replace("/csv/", "/json/"),
        headers=headers,
        files={"file": ("a.json", b"[]", "application/json")},
        timeout=10,
    )
    assert [r.status_code for r in (no_part, raw_body, wrong_format)] == [400, 400, 400]
    assert no_part.json()["meta"]["validation"] == [
        {"property": "file", "message": "the form has no part named 'file'"}
    ]
    assert (
        raw_body.json()["meta"]["validation"][0]["message"] == "The request must be multipart/form-data, not text/csv."
    )
    assert wrong_format.json()["meta"]["validation"][0]["property"] == "datasourceId"


def test_an_upload_to_the_wrong_format_fails_with_allyys_message(conn: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(VendorAPIError, match=f"datasourceId: Datasource {CSV_SOURCE} takes csv files, not json"):
        AllyyHook().upload_file(DATA_SET, CSV_SOURCE, "json", csv_file(tmp_path))


@pytest.mark.parametrize(
    ("kind", "spec", "arrives_first_time"),
    [
        ("drop", {}, True),  # the file arrived, the answer was lost
        ("status", {"status": 502}, False),  # a proxy refused it before Allyy saw it
        ("status", {"status": 429, "retry_after": 0.05}, False),
    ],
)
def test_an_upload_arrives_once_whatever_happens_to_the_answer(
    sandbox: Sandbox, conn: dict[str, Any], tmp_path: Path, kind: str, spec: dict[str, Any], arrives_first_time: bool
) -> None:
    sandbox.fault(
        "allyy",
        kind,
        path=f"/api/data/v1.0/customer/{CUSTOMER_ID}/dataset/{DATA_SET}/datasource/",
        method="POST",
        **spec,
    )
    upload = AllyyHook().upload_file(DATA_SET, CSV_SOURCE, "csv", csv_file(tmp_path))
    arrived = uploads_arrived(sandbox)
    assert len(arrived) == 1 and arrived[0]["id"] == upload["id"]
    posts = [r for r in sandbox.requests("allyy") if r["method"] == "POST" and r["path"].endswith("/upload")]
    assert len(posts) == (1 if arrives_first_time else 2)


# --- the trigger ---------------------------------------------------------------------------------


def run_trigger(trigger: Any) -> list[Any]:
    async def collect() -> list[Any]:
        return [event async for event in trigger.run()]

    return asyncio.run(collect())


def test_the_trigger_waits_until_allyy_finishes(sandbox: Sandbox, conn: dict[str, Any], tmp_path: Path) -> None:
    from vendorflow.vendors.allyy.triggers import AllyyUploadTrigger

    sandbox.configure("allyy", processing_seconds=0.6)
    upload = AllyyHook().upload_file(DATA_SET, CSV_SOURCE, "csv", csv_file(tmp_path))
    spec = {
        "key": "recreativ/x/dt=2024-03-01",
        "data_set_id": DATA_SET,
        "datasource_id": CSV_SOURCE,
        "upload_id": upload["id"],
        "requested_at": "2024-01-01T00:00:00+00:00",
    }
    trigger = AllyyUploadTrigger(conn_id=None, uploads=[spec], keys=[spec["key"]], poll_interval=0.1, timeout=30)
    classpath, kwargs = trigger.serialize()
    assert classpath == "vendorflow.vendors.allyy.triggers.AllyyUploadTrigger"
    [event] = run_trigger(AllyyUploadTrigger(**kwargs))
    assert event.payload["status"] == "done"
    assert upload_state(event.payload["uploads"][spec["key"]]) == "finished"
    polls = [r for r in sandbox.requests("allyy") if r["method"] == "GET" and r["path"].endswith("/upload")]
    assert len(polls) >= 3  # it polled while Allyy was processing

    sandbox.configure("allyy", processing_seconds=60)
    late = AllyyHook().upload_file(DATA_SET, CSV_SOURCE, "csv", csv_file(tmp_path))
    [event] = run_trigger(
        AllyyUploadTrigger(
            conn_id=None,
            uploads=[{**spec, "upload_id": late["id"]}],
            keys=[spec["key"]],
            poll_interval=0.1,
            timeout=0.3,
        )
    )
    assert event.payload["status"] == "timeout" and "still processing" in event.payload["message"]
