"""Auth objects that own their tokens: each token source against a fake server, through the client,
with the shared cache and one refresh on 401."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
import responses

from vendorflow.errors import VendorResponseError
from vendorflow.http.auth import BearerAuth, JWTLogin, OAuth2ClientCredentials, QueryTokenAuth, jwt_lifetime
from vendorflow.http.client import VendorClient
from vendorflow.http.retry import RetryPolicy

BASE = "https://api.example"


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VENDORFLOW_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("VENDORFLOW_REDIS_URL", raising=False)


def client(auth: object) -> VendorClient:
    return VendorClient(vendor="Acme", base_url=BASE, auth=auth, retry=RetryPolicy(attempts=2, sleep=lambda s: None))  # type: ignore[arg-type]


@responses.activate
def test_client_credentials_as_a_form_with_basic_auth_and_the_token_in_the_query() -> None:
    token = responses.post(
        f"{BASE}/api/token",
        json={"access_token": "t1", "expires_in": 3600},
        match=[
            responses.matchers.urlencoded_params_matcher({"grant_type": "client_credentials"}),
            responses.matchers.header_matcher({"Authorization": "Basic " + base64.b64encode(b"k:s").decode()}),
        ],
    )
    responses.get(f"{BASE}/api/lead", json=[], match=[responses.matchers.query_param_matcher({"access_token": "t1"})])
    source = OAuth2ClientCredentials("fp", "/api/token", {"grant_type": "client_credentials"}, basic=("k", "s"))
    c = client(QueryTokenAuth(source))
    assert c.get_json("/api/lead")[0] == [] and c.get_json("/api/lead")[0] == []
    assert token.call_count == 1  # cached


@responses.activate
def test_client_credentials_in_the_query_string_and_one_refresh_after_a_401() -> None:
    grant = {"grant_type": "client_credentials", "client_id": "id", "client_secret": "sec"}
    responses.post(f"{BASE}/token", json={"access_token": "old"}, match=[responses.matchers.query_param_matcher(grant)])
    responses.post(
        f"{BASE}/token",
        json={"access_token": "new", "expires_in": 60},
        match=[responses.matchers.query_param_matcher(grant)],
    )
    responses.get(f"{BASE}/me", status=401, match=[responses.matchers.header_matcher({"Authorization": "Bearer old"})])
    responses.get(
        f"{BASE}/me", json={"ok": 1}, match=[responses.matchers.header_matcher({"Authorization": "Bearer new"})]
    )
    auth = BearerAuth(OAuth2ClientCredentials("al", "/token", grant, send="query", default_lifetime=28_800))
    assert client(auth).get_json("/me")[0] == {"ok": 1}
    assert auth.tokens.fetches == 2


@responses.activate
def test_a_token_answer_without_a_token_names_the_problem_and_not_the_secret() -> None:
    responses.post("https://login.example/connect/token", json={"error": "nope"})
    source = OAuth2ClientCredentials("ay", "https://login.example/connect/token", {"client_secret": "sec"})
    with pytest.raises(VendorResponseError, match="POST /connect/token: the answer has no access_token") as error:
        client(BearerAuth(source)).get_json("/me")
    assert "sec" not in str(error.value)


def jwt(exp: float) -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"exp": exp}).encode()).decode().rstrip("=")
    return f"h.{claims}.s"


@responses.activate
def test_a_jwt_login_is_renewed_early_but_never_more_than_a_tenth_of_its_life() -> None:
    token = jwt(10**10)
    responses.post("https://auth.example/v1/auth", json={"success": True, "payload": {"token": token}})
    source = JWTLogin("rc", "/v1/auth", ("id", "secret"), base_url="https://auth.example", early=100.0)
    value, lifetime = source.fetch(client(None))
    assert value == token and 10**10 - lifetime > 99  # 100 s early
    assert jwt_lifetime(jwt(1_100), 3600, now=1_000) == 100.0 and jwt_lifetime("x", 3600) == 3600
    responses.post("https://auth.example/v1/auth", json={"success": True, "payload": {"token": jwt(time.time() + 200)}})
    _, short = source.fetch(client(None))
    assert 170 < short < 185  # 200 s to live: renewed a tenth (20 s) early, not 100 s


def test_an_auth_built_on_a_source_needs_a_client() -> None:
    with pytest.raises(RuntimeError, match="pass it to VendorClient"):
        BearerAuth(OAuth2ClientCredentials("x", "/t", {})).tokens.get()
