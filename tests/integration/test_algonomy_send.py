"""The opt-out send step (``send_pending``) over real HTTP, without Airflow: resuming, stopping, one sender
at a time."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests

from include.sandbox.control import Sandbox

pytestmark = pytest.mark.integration

FAST = {"requests_per_second": 1000, "backoff_seconds": 0.01, "max_backoff_seconds": 0.05}


def optouts(sandbox: Sandbox) -> dict[str, Any]:
    response = requests.get(sandbox.url("/_sandbox/algonomy/optouts"), timeout=10)
    response.raise_for_status()
    return response.json()


@pytest.fixture
def ledger(state_dir: Path) -> Any:
    from vendorflow.vendors.algonomy.optouts import open_ledger

    return open_ledger()


def hook() -> Any:
    from vendorflow.vendors.algonomy.hook import AlgonomyHook

    return AlgonomyHook()


def record(ledger: Any, ids: list[str]) -> None:
    from vendorflow.vendors.algonomy.optouts import record_requested

    record_requested(ledger, ids, source="params", run_id="test", dt=date(2024, 3, 1))


def test_the_sandbox_refuses_an_expired_token_as_documented(sandbox: Sandbox) -> None:
    import time

    sandbox.configure("algonomy", expires_in=1)
    base = sandbox.url("/algonomy/profile-command/v1")
    token = requests.post(
        f"{base}/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": "sandbox-c", "client_secret": "sandbox-s"},
        timeout=10,
    ).json()
    assert token["expires_in"] == 1 and token["token_type"] == "bearer"
    body = {"type": "optOut", "enableOptOut": True}
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert requests.put(f"{base}/site/optOut/u1", json=body, headers=headers, timeout=10).json() == {}
    time.sleep(1.1)
    expired = requests.put(f"{base}/site/optOut/u2", json=body, headers=headers, timeout=10)
    assert expired.status_code == 401
    assert expired.json() == {
        "error_description": "The access token is invalid or has expired",
        "error": "invalid_token",
    }
    assert list(optouts(sandbox)["users"]) == ["u1"]


def test_errors_that_would_hit_every_id_stop_the_sending_and_leave_the_rest_pending(
    sandbox: Sandbox,
    connect,
    ledger: Any,  # type: ignore[no-untyped-def]
) -> None:
    from vendorflow.vendors.algonomy.optouts import pending_user_ids, send_pending

    sandbox.configure("algonomy", rate_limit=2000)
    connect("algonomy", retries=2, concurrency=4, **FAST)
    ids = [f"u{i:03d}" for i in range(60)]
    record(ledger, ids)
    sandbox.fault("algonomy", "status", status=503, method="PUT", count=10_000, after=20)
    summary = send_pending(hook(), ledger)
    assert summary.stopped and "gave up after 2 attempts" in summary.stopped
    assert summary.accepted + len(summary.failed) + summary.not_sent == len(ids)
    assert summary.not_sent > 0, "once the vendor is down, the rest is not sent"
    statuses = {e.key: e.status for e in ledger.entries()}
    assert {k for k, s in statuses.items() if s == "accepted"} == set(optouts(sandbox)["users"])
    assert {k for k, s in statuses.items() if s == "failed"} == set(summary.failed)
    assert all("503" in ledger.get(k).data["last_error"] for k in summary.failed)

    sandbox.clear_faults()
    again = send_pending(hook(), ledger)  # the rerun: everything not accepted, nothing else
    assert again.pending == len(ids) - summary.accepted and again.accepted == again.pending
    assert pending_user_ids(ledger) == []
    record_ = optouts(sandbox)
    assert set(record_["users"]) == set(ids) and record_["repeated"] == []


def test_a_refused_id_is_failed_with_the_vendors_message_and_the_others_go_on(
    sandbox: Sandbox,
    connect,
    ledger: Any,  # type: ignore[no-untyped-def]
) -> None:
    from vendorflow.vendors.algonomy.optouts import send_pending

    sandbox.configure("algonomy", rate_limit=2000)
    conn = connect("algonomy", **FAST)
    record(ledger, ["a", "b", "c"])
    sandbox.fault(
        "algonomy", "status", status=404, method="PUT", path=f"/profile-command/v1/{conn['extra']['api_key']}/optOut/b"
    )
    summary = send_pending(hook(), ledger)
    assert summary.accepted == 2 and list(summary.failed) == ["b"] and summary.stopped is None
    entry = ledger.get("b")
    assert entry.status == "failed" and entry.data["attempts"] == 1 and "HTTP 404" in entry.data["last_error"]


def test_two_senders_at_once_never_send_an_id_twice(sandbox: Sandbox, connect, ledger: Any) -> None:  # type: ignore[no-untyped-def]
    from vendorflow.vendors.algonomy.optouts import send_pending

    sandbox.configure("algonomy", rate_limit=2000, latency_ms=2)
    connect("algonomy", concurrency=4, **FAST)
    ids = [f"x{i:03d}" for i in range(200)]
    record(ledger, ids)
    results: list[Any] = []
    senders = [threading.Thread(target=lambda: results.append(send_pending(hook(), ledger))) for _ in range(2)]
    for s in senders:
        s.start()
    for s in senders:
        s.join(60)
    assert sorted(r.accepted for r in results) == [0, len(ids)], "the second sender waited, then found nothing pending"
    record_ = optouts(sandbox)
    assert len(record_["users"]) == len(ids) and record_["repeated"] == []
