"""RecomendoHook over real HTTP against the sandbox: auth caching and refresh, every endpoint, every fault switch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from include.sandbox.control import Sandbox

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FAST_RETRY = {"retries": 4, "backoff_seconds": 0.05, "max_backoff_seconds": 0.2}


@pytest.fixture
def conn(connect, state_dir: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return connect("recomendo", requests_per_second=200, **FAST_RETRY)


def hook():  # type: ignore[no-untyped-def]
    from vendorflow.vendors.recomendo.hook import RecomendoHook

    return RecomendoHook()


def auth_calls(sandbox: Sandbox, conn: dict[str, Any]) -> list[dict[str, Any]]:
    return sandbox._call("GET", "/_sandbox/recomendo/auths", params={"client": conn["login"]})


def accepted(sandbox: Sandbox, conn: dict[str, Any]) -> list[dict[str, Any]]:
    return sandbox._call("GET", "/_sandbox/recomendo/events", params={"client": conn["login"]})


def event(n: int) -> dict[str, Any]:
    return {
        "event": "lead",
        "entityType": "user",
        "entityId": f"c{n % 7}",
        "targetEntityType": "item",
        "targetEntityId": f"o{n}",
        "eventTime": "2024-03-01T10:00:00.000Z",
    }


def test_usage_reads_the_month_report_with_one_auth_call(sandbox: Sandbox, conn: dict[str, Any]) -> None:
    sandbox.configure("recomendo", today="2024-03-05")
    h = hook()
    report = h.usage()
    assert (
        report["usagePlan"] == "PROFESSIONAL"
        and report["startDate"] == "2024-03-01"
        and report["endDate"] == "2024-03-05"
    )
    assert [u["date"] for u in report["usages"]] == [f"2024-03-0{d}" for d in range(1, 6)]
    h.usage()
    assert hook().usage() == report  # a second hook (another task) reuses the stored token
    assert len(auth_calls(sandbox, conn)) == 1
    paths = [r["path"] for r in sandbox.requests("recomendo")]
    assert paths.count("/auth/v1/auth") == 1 and paths.count("/client/v1/usage") == 3


def _read_usage(barrier: Any) -> None:
    from vendorflow.vendors.recomendo.hook import RecomendoHook

    hook = RecomendoHook()
    barrier.wait(timeout=60)
    hook.usage()


def test_one_auth_call_for_many_processes(sandbox: Sandbox, conn: dict[str, Any]) -> None:
    import multiprocessing

    import vendorflow.vendors.recomendo.hook  # noqa: F401 - imported once, inherited by the forked workers

    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(6)
    workers = [context.Process(target=_read_usage, args=(barrier,)) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * 6
    assert len(auth_calls(sandbox, conn)) == 1  # six processes found no token at once; one fetched it


def test_a_token_is_replaced_when_its_lifetime_is_over(sandbox: Sandbox, connect, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    import time

    sandbox.configure("recomendo", token_lifetime=1.5)
    conn = connect("recomendo", token_leeway_seconds=100, **FAST_RETRY)  # longer than the token lives
    h = hook()
    h.usage()
    h.usage()
    assert len(auth_calls(sandbox, conn)) == 1
    time.sleep(1.4)  # past exp - leeway (a tenth of the 1.5 s lifetime at most): renewed before the vendor refuses
    h.usage()
    assert len(auth_calls(sandbox, conn)) == 2
    assert not [r for r in sandbox.requests("recomendo") if r["status"] == 401]


def test_token_expiry_in_the_middle_of_the_events_costs_one_auth_call(sandbox: Sandbox, conn: dict[str, Any]) -> None:
    sandbox.configure("recomendo", expire_tokens_after_events=40)
    outcomes = list(hook().send_events([event(n) for n in range(120)], concurrency=8))
    assert all(o.accepted for o in outcomes) and len(outcomes) == 120
    assert len(accepted(sandbox, conn)) == 120
    assert len(auth_calls(sandbox, conn)) == 2  # the first token, and exactly one replacement
    refused = [r for r in sandbox.requests("recomendo") if r["status"] == 401]
    assert 1 <= len(refused) <= 8  # only requests already in flight with the expired token


def test_events_are_sent_one_per_request_and_rejections_are_reported(sandbox: Sandbox, conn: dict[str, Any]) -> None:
    bad = {"event": "$set", "entityType": "user", "entityId": "1", "targetEntityType": "item", "targetEntityId": "2"}
    bad_time = {**event(99), "eventTime": "01/03/2024"}
    outcomes = list(hook().send_events([event(1), bad, event(2), bad_time]))
    assert [o.accepted for o in outcomes] == [True, False, True, False]
    assert outcomes[1].status == 400 and "cannot have targetEntity" in (outcomes[1].error or "")
    assert "01/03/2024" in (outcomes[3].error or "")
    assert {e["eventId"] for e in accepted(sandbox, conn)} == {outcomes[0].event_id, outcomes[2].event_id}
    assert sum(1 for r in sandbox.requests("recomendo") if r["path"] == "/events/v1/events.json") == 4


def test_train_is_sent_once_and_a_refusal_is_not_retried(sandbox: Sandbox, conn: dict[str, Any]) -> None:
    from vendorflow.vendors.recomendo.hook import TrainingRefused

    h = hook()
    assert h.train()["messageCode"] == "EXECUTE_TRAIN_SCHEDULED"
    with pytest.raises(TrainingRefused, match="HTTP 429"):
        h.train()
    trainings = sandbox._call("GET", "/_sandbox/recomendo/trainings", params={"client": conn["login"]})
    assert [t["status"] for t in trainings] == [200, 429]


def test_train_is_not_retried_after_a_server_error(sandbox: Sandbox, conn: dict[str, Any]) -> None:
    from vendorflow.errors import VendorAPIError

    sandbox.fault("recomendo", "status", status=503, path="/client/v1/train")
    with pytest.raises(VendorAPIError, match="503"):
        hook().train()
    assert sum(1 for r in sandbox.requests("recomendo") if r["path"] == "/client/v1/train") == 1


def test_queries_return_item_scores(sandbox: Sandbox, conn: dict[str, Any]) -> None:
    h = hook()
    list(h.send_events([event(n) for n in range(10)]))
    scores = h.query({"user": "nobody", "num": 3})["itemScores"]
    assert len(scores) == 3 and all({"item", "score"} <= set(s) for s in scores)


def test_quota_exhausted_queries_fail_at_once(sandbox: Sandbox, conn: dict[str, Any]) -> None:
    from vendorflow.errors import VendorAPIError

    sandbox.configure("recomendo", monthly_quota=1, today="2024-03-01")
    h = hook()
    h.query({"user": "1"})
    with pytest.raises(VendorAPIError, match="429"):
        h.query({"user": "1"})
    assert sum(1 for r in sandbox.requests("recomendo") if r["path"].endswith("queries.json")) == 2


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "status", "status": 503},
        {"kind": "status", "status": 429, "retry_after": 0.1},
        {"kind": "drop"},
        {"kind": "slow", "delay": 1.5},
    ],
)
def test_transient_faults_are_retried(sandbox: Sandbox, connect, state_dir: Path, fault: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    conn = connect("recomendo", timeout=0.8, **FAST_RETRY)
    h = hook()
    h.usage()
    sandbox.fault("recomendo", fault.pop("kind"), path="/events/v1/events.json", **fault)
    sender = hook()
    event_id = sender.send_event(event(1))
    assert sender.client.retries == 1
    assert event_id in {e["eventId"] for e in accepted(sandbox, conn)}


@pytest.mark.parametrize(
    "variant,problem",
    [
        ("html", "answered HTML instead of JSON"),
        ("xml", "answered XML instead of JSON"),
        ("truncated", "truncated JSON body"),
        ("missing_key", "payload.usages is not a list"),
        ("wrong_type", "payload.usages is not a list"),
    ],
)
def test_malformed_usage_fails_naming_vendor_and_endpoint(
    sandbox: Sandbox, conn: dict[str, Any], variant: str, problem: str
) -> None:
    from vendorflow.errors import VendorResponseError

    h = hook()
    h.usage()
    sandbox.fault("recomendo", "malformed", variant=variant, path="/client/v1/usage", field="usages")
    with pytest.raises(VendorResponseError) as caught:
        h.usage()
    assert str(caught.value).startswith("Recomendo GET /v1/usage: ") and problem in str(caught.value)


def test_bad_credentials_fail_clearly_and_test_connection_says_so(
    sandbox: Sandbox, connect, state_dir: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    conn = connect("recomendo", **FAST_RETRY)
    assert hook().test_connection()[0] is True
    monkeypatch.setenv("AIRFLOW_CONN_RECOMENDO_DEFAULT", json.dumps({**conn, "password": "wrong-secret"}))
    ok, message = hook().test_connection()
    assert not ok and "HTTP 401" in message and "Unauthorized" in message and "wrong-secret" not in message


def test_a_forged_token_gets_401_and_one_refresh(sandbox: Sandbox, conn: dict[str, Any]) -> None:
    h = hook()
    h.usage()
    sandbox._call("POST", "/_sandbox/recomendo/expire-tokens")
    h.usage()
    assert len(auth_calls(sandbox, conn)) == 2
    assert [r["status"] for r in sandbox.requests("recomendo") if r["path"] == "/client/v1/usage"] == [200, 401, 200]


def test_a_malformed_event_answer_fails_naming_the_endpoint(sandbox: Sandbox, conn: dict[str, Any]) -> None:
    from vendorflow.errors import VendorResponseError

    h = hook()
    sandbox.fault("recomendo", "malformed", variant="html", path="/events/v1/events.json")
    with pytest.raises(VendorResponseError, match=r"^Recomendo POST /v1/events.json: answered HTML instead of JSON"):
        list(h.send_events([event(1)]))
    sandbox.fault("recomendo", "malformed", variant="missing_key", path="/events/v1/events.json", field="eventId")
    with pytest.raises(VendorResponseError, match="no eventId in the answer"):
        h.send_event(event(2))
