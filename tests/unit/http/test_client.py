"""The client against a fake server: retries, Retry-After, 401 refresh, vendor messages, bad bodies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import responses

from vendorflow.errors import VendorAPIError, VendorResponseError
from vendorflow.http.auth import BearerAuth, QueryTokenAuth, StaticHeaderAuth
from vendorflow.http.client import VendorClient, decode_json
from vendorflow.http.retry import RetryPolicy
from vendorflow.http.tokens import FileTokenStore, TokenManager

BASE = "https://api.example/v1"


def client(auth: requests.auth.AuthBase | None = None, attempts: int = 4) -> tuple[VendorClient, list[float]]:
    slept: list[float] = []
    policy = RetryPolicy(attempts=attempts, initial=0.01, maximum=0.05, sleep=slept.append)
    return VendorClient(vendor="Acme", base_url=BASE, auth=auth, retry=policy), slept


@responses.activate
def test_retries_429_and_5xx_honouring_retry_after() -> None:
    responses.get(f"{BASE}/items", status=429, headers={"Retry-After": "2"}, json={"message": "slow down"})
    responses.get(f"{BASE}/items", status=503, body="busy")
    responses.get(f"{BASE}/items", json=[{"id": 1}])
    c, slept = client()
    body, _ = c.get_json("/items")
    assert body == [{"id": 1}]
    assert len(slept) == 2 and slept[0] >= 2.0
    assert c.retries == 2 and c.requests_sent == 3


@responses.activate
def test_gives_up_after_the_attempts_with_the_vendors_message() -> None:
    responses.get(f"{BASE}/items", status=502, json={"message": "upstream down"})
    c, _ = client(attempts=3)
    with pytest.raises(VendorAPIError) as error:
        c.get_json("/items")
    assert error.value.status == 502
    assert "upstream down" in str(error.value) and "gave up after 3 attempts" in str(error.value)
    assert len(responses.calls) == 3


@responses.activate
def test_other_4xx_fail_at_once_with_the_vendors_message() -> None:
    responses.get(f"{BASE}/items", status=422, json={"name": "Data Validation Failed", "message": "bad filter"})
    c, _ = client()
    with pytest.raises(VendorAPIError, match="Acme GET /items: HTTP 422: Data Validation Failed; bad filter"):
        c.get_json("/items")
    assert len(responses.calls) == 1


@responses.activate
def test_dropped_connections_are_retried_and_never_quote_the_url() -> None:
    responses.get(
        f"{BASE}/items",
        body=requests.ConnectionError(f"Max retries exceeded with url: {BASE}/items?access_token=SECRET123"),
    )
    responses.get(f"{BASE}/items", json=[])
    c, _ = client()
    assert c.get_json("/items")[0] == []
    responses.get(f"{BASE}/gone", body=requests.ConnectionError("refused access_token=SECRET123"))
    with pytest.raises(VendorAPIError) as error:
        c.get_json("/gone", params={"access_token": "SECRET123"})
    assert "SECRET123" not in str(error.value)
    assert error.value.__cause__ is None and error.value.__suppress_context__


@responses.activate
def test_static_header_auth() -> None:
    responses.get(f"{BASE}/me", json={"id": 1}, match=[responses.matchers.header_matcher({"Auth-Token": "tok"})])
    c, _ = client(StaticHeaderAuth("Auth-Token", "tok"))
    assert c.get_json("/me")[0] == {"id": 1}


@responses.activate
def test_a_401_refreshes_the_token_once(tmp_path: Path) -> None:
    tokens = iter(["old", "new", "newer"])
    manager = TokenManager("k", lambda: (next(tokens), 3600), store=FileTokenStore(tmp_path))
    responses.get(
        f"{BASE}/me",
        status=401,
        json={"message": "Unauthorized"},
        match=[responses.matchers.header_matcher({"Authorization": "Bearer old"})],
    )
    responses.get(
        f"{BASE}/me", json={"ok": True}, match=[responses.matchers.header_matcher({"Authorization": "Bearer new"})]
    )
    c, _ = client(BearerAuth(manager))
    assert c.get_json("/me")[0] == {"ok": True}
    assert manager.fetches == 2


@responses.activate
def test_a_second_401_is_the_vendors_answer(tmp_path: Path) -> None:
    manager = TokenManager("k", lambda: ("t", 3600), store=FileTokenStore(tmp_path))
    responses.get(f"{BASE}/me", status=401, json={"message": "Unauthorized"})
    c, _ = client(BearerAuth(manager))
    with pytest.raises(VendorAPIError, match="HTTP 401: Unauthorized"):
        c.get_json("/me")
    assert len(responses.calls) == 2 and manager.fetches == 2


@responses.activate
def test_query_token_auth_puts_the_token_in_the_query_and_refreshes(tmp_path: Path) -> None:
    tokens = iter(["q1", "q2"])
    manager = TokenManager("q", lambda: (next(tokens), 3600), store=FileTokenStore(tmp_path))
    responses.get(
        f"{BASE}/lead", status=401, match=[responses.matchers.query_param_matcher({"page": "1", "access_token": "q1"})]
    )
    responses.get(
        f"{BASE}/lead", json=[], match=[responses.matchers.query_param_matcher({"page": "1", "access_token": "q2"})]
    )
    c, _ = client(QueryTokenAuth(manager))
    assert c.get_json("/lead", params={"page": 1})[0] == []


def _response(body: bytes, content_type: str = "application/json", status: int = 200) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers["Content-Type"] = content_type
    return response


@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        (b"<!DOCTYPE html><html><body>502</body></html>", "text/html", "answered HTML instead of JSON"),
        (b'<?xml version="1.0"?><response><item/></response>', "application/json", "answered XML instead of JSON"),
        (b'[{"id": 1}, {"id": ', "application/json", "truncated JSON body"),
        (b'{"id": 1,, }', "application/json", "malformed JSON body"),
        (b"", "application/json", "empty body"),
    ],
)
def test_bodies_that_are_not_json_are_named(body: bytes, content_type: str, problem: str) -> None:
    with pytest.raises(VendorResponseError, match=problem) as error:
        decode_json(_response(body, content_type), "Acme", "GET /items")
    assert str(error.value).startswith("Acme GET /items: ")


def test_json_labelled_text_plain_is_fine() -> None:
    assert decode_json(_response(json.dumps({"a": 1}).encode(), "text/plain"), "Allyy", "GET /x") == {"a": 1}


def test_describe_masks_secret_params() -> None:
    c, _ = client()
    assert c.describe("get", "/lead", {"page": 2, "access_token": "zz"}) == "GET /lead?page=2&access_token=***"
