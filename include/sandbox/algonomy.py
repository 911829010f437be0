"""Algonomy's (RichRelevance) Profile Command API as documented (algonomy-profile-command.txt).

- ``POST /profile-command/v1/oauth2/token``: OAuth2 client credentials, sent in
  the query string (as documented) or as a form body (as the older page and
  its cURL example do). A client is valid when both its ``client_id`` and its
  ``client_secret`` start with ``sandbox`` (so every test can use a credential
  of its own); anything else gets the documented ``invalid_client`` (401), a
  ``grant_type`` other than ``client_credentials`` the documented
  ``unsupported_grant_type`` (400). Tokens live ``expires_in`` seconds
  (28,800 by default, configurable).
- ``PUT /profile-command/v1/{apiKey}/optOut/{userId}`` with the bearer token
  and the documented body ``{"type": "optOut", "enableOptOut": true}``
  answers ``{}``; a missing, unknown or expired token gets the documented
  ``invalid_token`` (401); a body that is not the documented one gets 400.
- 429 above ``rate_limit`` (100) opt-outs per second in any sliding second, per
  client credential (every token of one client shares the budget, as the
  vendor's limit is per site, not per token).
- ``GET /_sandbox/algonomy/optouts``: every user opted out, how many times,
  when first and last, and under which API keys: the test oracle.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from include.sandbox.core import (
    SandboxState,
    TenantApp,
    Vendor,
    bearer_token,
    credential_prefix,
    tenant_name,
    tenant_prefix,
)

PREFIX = "/algonomy"
DEFAULT_EXPIRES_IN = 28_800
OPT_OUT_PATH = "/profile-command/v1/{api_key}/optOut/{user_id:path}"


class Registry:
    """Issued tokens and the opt-out record; thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.tokens: dict[str, tuple[str, float]] = {}  # token -> (client_id, expires_at)
            self.optouts: dict[str, dict[str, Any]] = {}
            self.token_requests = 0

    def issue(self, client_id: str, lifetime: float) -> str:
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = (client_id, time.time() + lifetime)
            self.token_requests += 1
        return token

    def client_of(self, token: str | None) -> str | None:
        """The client a token was issued to, if the token is known (expired or not)."""
        if not token:
            return None
        with self.lock:
            found = self.tokens.get(token)
        return found[0] if found else None

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        with self.lock:
            found = self.tokens.get(token)
        return found is not None and time.time() < found[1]

    def opt_out(self, api_key: str, user_id: str) -> None:
        now = time.time()
        with self.lock:
            record = self.optouts.get(user_id)
            if record is None:
                record = self.optouts[user_id] = {"count": 0, "first_at": now, "last_at": now, "api_keys": []}
            record["count"] += 1
            record["last_at"] = now
            if api_key not in record["api_keys"]:
                record["api_keys"].append(api_key)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            users = {uid: {**r, "api_keys": list(r["api_keys"])} for uid, r in self.optouts.items()}
            return {
                "users": users,
                "opted_out": len(users),
                "requests": sum(r["count"] for r in users.values()),
                "repeated": sorted(uid for uid, r in users.items() if r["count"] > 1),
                "token_requests": self.token_requests,
            }


def _error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error_description": description, "error": error}, status_code=status)


def create_app(config: dict[str, Any], registry: Registry) -> FastAPI:
    app = FastAPI(title="Algonomy sandbox", openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/profile-command/v1/oauth2/token")
    async def token(request: Request) -> JSONResponse:
        fields = {k: v[-1] for k, v in parse_qs(request.url.query, keep_blank_values=True).items()}
        content_type = request.headers.get("content-type", "")
        if "application/x-www-form-urlencoded" in content_type:
            body = (await request.body()).decode("utf-8", "replace")
            fields.update({k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()})
        if fields.get("grant_type") != "client_credentials":
            return _error(400, "unsupported_grant_type", "Invalid grant_type")
        client_id, client_secret = fields.get("client_id", ""), fields.get("client_secret", "")
        if not (client_id.startswith(credential_prefix()) and client_secret.startswith(credential_prefix())):
            return _error(401, "invalid_client", "Invalid client authentication")
        lifetime = int(config.get("expires_in", DEFAULT_EXPIRES_IN))
        value = registry.issue(client_id, lifetime)
        return JSONResponse({"token_type": "bearer", "access_token": value, "expires_in": lifetime})

    @app.put(OPT_OUT_PATH)
    async def opt_out(api_key: str, user_id: str, request: Request) -> JSONResponse:
        if not registry.valid(bearer_token(request.scope)):
            return _error(401, "invalid_token", "The access token is invalid or has expired")
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("type") != "optOut":
            return _error(400, "invalid_request", 'The body must be {"type": "optOut", "enableOptOut": true}')
        if body.get("enableOptOut") not in (True, "true"):
            return _error(400, "invalid_request", "enableOptOut must be true: a user cannot be opted back in")
        if not user_id or "/" in user_id:
            return _error(404, "not_found", "No such resource")
        registry.opt_out(api_key, user_id)
        return JSONResponse({})

    app.sandbox_reset = registry.reset  # type: ignore[attr-defined]
    return app


_REGISTRY = Registry()
_REGISTRIES = {"": _REGISTRY, "b": Registry()}  # a registry per tenant: each site has its own opt-outs


def token_of(scope: dict[str, Any]) -> str | None:
    """The rate-limit key of a request: the client its bearer token belongs to (the raw token if unknown)."""
    token = bearer_token(scope)
    if token is None:
        return None
    return next((r.client_of(token) for r in _REGISTRIES.values() if r.client_of(token)), None) or token


def throttled(window: float) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps(
        {"error_description": "Too Many Requests: above 100 user ID updates per second", "error": "too_many_requests"}
    )
    return 429, {"content-type": "application/json", "retry-after": f"{window:g}"}, body.encode()


def vendor(tenant: str = "") -> Vendor:
    config: dict[str, Any] = {"rate_limit": 100, "expires_in": DEFAULT_EXPIRES_IN, "latency_ms": 0}
    return Vendor(
        name=tenant_name("algonomy", tenant),
        prefix=tenant_prefix(PREFIX, tenant),
        app=TenantApp(create_app(config, _REGISTRIES[tenant]), tenant),
        token_of=token_of,
        throttled=throttled,
        config=config,
    )


def control_routes(control: FastAPI, state: SandboxState) -> None:
    @control.get("/_sandbox/algonomy/optouts")
    def optouts(tenant: str = "") -> dict[str, Any]:
        """The opt-outs of the first tenant's site, or of ``?tenant=b``'s."""
        if tenant not in _REGISTRIES:
            raise HTTPException(404, f"no tenant {tenant!r}")
        return _REGISTRIES[tenant].snapshot()

    @control.get("/_sandbox/algonomy/tokens")
    def tokens() -> list[str]:
        """Every access token issued since the last reset (for leak tests to search for)."""
        with _REGISTRY.lock:
            return list(_REGISTRY.tokens)


def connection(base_url: str, suffix: str = "", tenant: str = "") -> tuple[str, dict[str, Any]]:
    """``algonomy_default`` pointed at this sandbox (a fresh client per ``suffix``: its own budget);
    ``algonomy_<tenant>`` at another tenant's site (credentials starting with ``tenant<name>``)."""
    cred = credential_prefix(tenant)
    return f"algonomy_{tenant or 'default'}", {
        "conn_type": "algonomy",
        "host": f"{base_url}{tenant_prefix(PREFIX, tenant)}",
        "login": f"{cred}-client{suffix}",
        "password": f"{cred}-secret{suffix}",
        "extra": {"api_key": f"{cred}-site{suffix}", "requests_per_second": 100},
    }
