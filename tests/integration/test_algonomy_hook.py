"""AlgonomyHook over real HTTP against the sandbox: tokens, opt-outs, every documented error and fault switch."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from typing import Any

import pytest
import requests

from include.sandbox.control import Sandbox
from vendorflow.errors import VendorAPIError, VendorResponseError

pytestmark = pytest.mark.integration

# Tests where the rate is not the point run with a higher budget on both sides.
FAST = {"requests_per_second": 1000, "backoff_seconds": 0.01, "max_backoff_seconds": 0.05}


def hook() -> Any:
    from vendorflow.vendors.algonomy.hook import AlgonomyHook

    return AlgonomyHook()


def optouts(sandbox: Sandbox) -> dict[str, Any]:
    response = requests.get(sandbox.url("/_sandbox/algonomy/optouts"), timeout=10)
    response.raise_for_status()
    return response.json()


def opt_out_requests(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests("algonomy") if r["method"] == "PUT"]


@pytest.fixture
def fast(sandbox: Sandbox, connect, state_dir) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    sandbox.configure("algonomy", rate_limit=2000)
    return connect("algonomy", **FAST)


def test_opt_out_is_the_documented_put_and_is_recorded(sandbox: Sandbox, fast: dict[str, Any]) -> None:
    answer = hook().opt_out("user-1")
    assert answer.status == 200 and answer.body == {}
    assert answer.accepted_at.tzinfo is not None
    record = optouts(sandbox)
    assert record["users"]["user-1"]["count"] == 1
    assert record["users"]["user-1"]["api_keys"] == [fast["extra"]["api_key"]]
    put = opt_out_requests(sandbox)[0]
    assert put["path"] == f"/profile-command/v1/{fast['extra']['api_key']}/optOut/user-1"


def test_user_ids_with_reserved_characters_are_escaped_into_one_path_segment(
    sandbox: Sandbox, fast: dict[str, Any]
) -> None:
    hook().opt_out("a+b@example.com?x=1#2")
    assert list(optouts(sandbox)["users"]) == ["a+b@example.com?x=1#2"]


def test_bad_user_id_is_refused_before_sending(sandbox: Sandbox, fast: dict[str, Any]) -> None:
    for bad in ("", "a/b", "a b", "..", "x" * 257):
        with pytest.raises(ValueError):
            hook().opt_out(bad)
    assert sandbox.stats("algonomy")["requests"] == 0


@pytest.mark.parametrize("token_request", ["query", "form"])
def test_token_in_query_or_form_is_cached_across_hooks_and_processes(
    sandbox: Sandbox,
    connect,
    state_dir,
    token_request: str,  # type: ignore[no-untyped-def]
) -> None:
    connect("algonomy", token_request=token_request, **FAST)
    for i in range(3):
        hook().opt_out(f"u{i}")  # three hooks (three tasks): one token
    assert optouts(sandbox)["token_requests"] == 1
    token_calls = [r for r in sandbox.requests("algonomy") if r["path"].endswith("/oauth2/token")]
    assert len(token_calls) == 1
    if token_request == "form":
        assert token_calls[0]["query"] == ""
    else:
        assert "grant_type=client_credentials" in token_calls[0]["query"]


def test_expired_token_is_refreshed_before_it_expires(sandbox: Sandbox, connect, state_dir) -> None:  # type: ignore[no-untyped-def]
    sandbox.configure("algonomy", expires_in=2, rate_limit=2000)
    connect("algonomy", token_leeway_seconds=1, **FAST)
    h = hook()
    h.opt_out("a")
    time.sleep(1.1)  # inside the leeway: a new token before the old one is refused
    h.opt_out("b")
    assert optouts(sandbox)["token_requests"] == 2
    assert all(r["status"] == 200 for r in opt_out_requests(sandbox))


def test_token_the_vendor_refuses_is_replaced_once(sandbox: Sandbox, fast: dict[str, Any]) -> None:
    h = hook()
    h.opt_out("a")
    sandbox.reset()  # the sandbox forgets every token: the cached one is now invalid_token
    sandbox.configure("algonomy", rate_limit=2000)
    h.opt_out("b")
    statuses = [r["status"] for r in opt_out_requests(sandbox)]
    assert statuses == [401, 200]
    assert optouts(sandbox)["users"]["b"]["count"] == 1


def test_invalid_client_fails_with_the_vendors_message(sandbox: Sandbox, connect, state_dir) -> None:  # type: ignore[no-untyped-def]
    conn = connect("algonomy", **FAST)
    conn["password"] = "wrong-secret"
    os.environ["AIRFLOW_CONN_ALGONOMY_DEFAULT"] = json.dumps(conn)
    with pytest.raises(VendorAPIError) as error:
        hook().opt_out("a")
    assert error.value.status == 401
    assert "invalid_client" in str(error.value) and "Invalid client authentication" in str(error.value)
    assert "wrong-secret" not in str(error.value)
    ok, message = hook().test_connection()
    assert not ok and "invalid_client" in message and "wrong-secret" not in message
    assert optouts(sandbox)["opted_out"] == 0


def test_unsupported_grant_type_is_the_documented_error(sandbox: Sandbox) -> None:
    url = sandbox.url("/algonomy/profile-command/v1/oauth2/token")
    answer = requests.post(
        url, params={"grant_type": "password", "client_id": "sandbox-x", "client_secret": "sandbox-y"}, timeout=10
    )
    assert answer.status_code == 400
    assert answer.json() == {"error_description": "Invalid grant_type", "error": "unsupported_grant_type"}


def test_test_connection_makes_one_token_request(sandbox: Sandbox, fast: dict[str, Any]) -> None:
    ok, message = hook().test_connection()
    assert ok, message
    assert "28,800 s" in message
    assert fast["password"] not in message
    assert [r["path"] for r in sandbox.requests("algonomy")] == ["/profile-command/v1/oauth2/token"]


def test_missing_api_key_is_a_clear_configuration_error(sandbox: Sandbox, connect, state_dir) -> None:  # type: ignore[no-untyped-def]
    conn = connect("algonomy")
    conn["extra"] = {k: v for k, v in conn["extra"].items() if k != "api_key"}
    os.environ["AIRFLOW_CONN_ALGONOMY_DEFAULT"] = json.dumps(conn)
    with pytest.raises(Exception, match="api_key.*required"):
        hook().opt_out("a")


@pytest.mark.parametrize("status", [429, 500, 503])
def test_429_and_5xx_are_retried_until_accepted(sandbox: Sandbox, fast: dict[str, Any], status: int) -> None:
    sandbox.fault("algonomy", "status", status=status, method="PUT", count=2)
    answer = hook().opt_out("user-x")
    assert answer.status == 200
    assert [r["status"] for r in opt_out_requests(sandbox)] == [status, status, 200]
    assert optouts(sandbox)["users"]["user-x"]["count"] == 1


def test_a_dropped_connection_is_retried(sandbox: Sandbox, fast: dict[str, Any]) -> None:
    sandbox.fault("algonomy", "drop", method="PUT", count=1)
    assert hook().opt_out("user-d").status == 200
    # The vendor processed the dropped request too: an opt-out sent twice is harmless, never lost.
    assert optouts(sandbox)["users"]["user-d"]["count"] == 2


def test_a_slow_answer_is_waited_for(sandbox: Sandbox, fast: dict[str, Any]) -> None:
    sandbox.fault("algonomy", "slow", method="PUT", delay=0.3, count=1)
    assert hook().opt_out("user-s").status == 200


@pytest.mark.parametrize("variant", ["html", "xml", "truncated", "not_a_list"])
def test_an_answer_that_is_not_the_documented_object_is_not_an_acceptance(
    sandbox: Sandbox, fast: dict[str, Any], variant: str
) -> None:
    sandbox.fault("algonomy", "malformed", method="PUT", variant=variant, count=1)
    if variant == "not_a_list":
        # {"unexpected": {}} is still a JSON object: accepted, and the body is kept as the answer.
        assert hook().opt_out("user-m").body == {"unexpected": {}}
        return
    with pytest.raises(VendorResponseError, match="Algonomy PUT /profile-command/v1/.*/optOut/user-m"):
        hook().opt_out("user-m")


def test_gave_up_after_the_configured_attempts(sandbox: Sandbox, connect, state_dir) -> None:  # type: ignore[no-untyped-def]
    sandbox.configure("algonomy", rate_limit=2000)
    connect("algonomy", retries=3, **FAST)
    sandbox.fault("algonomy", "status", status=503, method="PUT", count=10)
    with pytest.raises(VendorAPIError, match="gave up after 3 attempts"):
        hook().opt_out("user-z")


def _opt_out_many(env: dict[str, str], prefix: str, n: int) -> None:
    os.environ.update(env)
    from vendorflow.vendors.algonomy.hook import AlgonomyHook

    h = AlgonomyHook()
    for i in range(n):
        h.opt_out(f"{prefix}-{i}")


def test_the_100_per_second_budget_is_shared_across_processes(sandbox: Sandbox, connect, state_dir) -> None:  # type: ignore[no-untyped-def]
    """Two processes on one credential at the real limit: no 429 from the sandbox's sliding window."""
    connect("algonomy")  # the real 100/s on both sides
    env = {k: v for k, v in os.environ.items() if k.startswith(("AIRFLOW_", "VENDORFLOW_"))}
    hook().tokens.get()  # one token for both, fetched up front
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_opt_out_many, args=(env, f"p{p}", 60)) for p in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    stats = sandbox.stats("algonomy")
    assert stats["throttled"] == 0
    assert optouts(sandbox)["opted_out"] == 120


@pytest.mark.parametrize(
    ("variant", "field", "problem"),
    [
        ("missing_key", "access_token", "the answer has no access_token"),
        ("wrong_type", "expires_in", "expires_in is 'not-a-int', not a number of seconds"),
        ("html", None, "answered HTML instead of JSON"),
        ("truncated", None, "truncated JSON body"),
    ],
)
def test_a_malformed_token_answer_names_the_problem_and_sends_nothing(
    sandbox: Sandbox, fast: dict[str, Any], variant: str, field: str | None, problem: str
) -> None:
    sandbox.fault("algonomy", "malformed", path="/profile-command/v1/oauth2/token", variant=variant, field=field)
    with pytest.raises(VendorResponseError) as error:
        hook().opt_out("user-t")
    assert problem in str(error.value)
    assert "Algonomy POST /profile-command/v1/oauth2/token" in str(error.value)
    assert fast["password"] not in str(error.value)
    assert opt_out_requests(sandbox) == []


def test_a_token_endpoint_outage_is_retried(sandbox: Sandbox, fast: dict[str, Any]) -> None:
    sandbox.fault("algonomy", "status", status=503, path="/profile-command/v1/oauth2/token", count=2, retry_after=0.01)
    assert hook().opt_out("user-o").status == 200
    assert optouts(sandbox)["token_requests"] == 1
