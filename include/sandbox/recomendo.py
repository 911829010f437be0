"""Recomendo as documented (recomendo.txt): PredictionIO's Event API and queries behind a JWT gateway.

Every service answers under ``/recomendo`` (one base URL) and under its own
sub-prefix (``/recomendo/auth``, ``/client``, ``/events``, ``/predictions``), so
both ways of configuring the connection are exercised.

- ``POST /v1/auth`` with ``Authorization: Basic base64(id:secret)``: a client id
  and secret both starting with ``sandbox`` are valid. The token is an HS256 JWT
  (``clientId``, ``jwtVersion``, ``iat``, ``exp``); ``exp`` is ``token_lifetime``
  seconds later (3600 by default). Any other call with a missing, forged or
  expired token gets the documented 401 ``{"message":"Unauthorized"}``.
- ``GET /v1/usage``: this month's daily report (``usagePlan``, ``startDate``,
  ``endDate``, ``usages``). ``remainingQuota`` is ``monthly_quota`` minus what
  was used since the 1st; a day's use is a pure function of the client and date
  plus the queries actually made that day. The month resets on the 1st: once
  the day changes, the report holds the new month only. Config ``today`` pins
  the day, and ``rollover_at`` (epoch seconds) makes it the next day from that
  moment on, so a test can watch a month end.
- ``POST /v1/events.json``: validated the way PredictionIO's ``EventValidation``
  does (reserved ``$set``/``$unset``/``$delete``, the ``$``/``pio_`` prefixes,
  ``targetEntityType`` with ``targetEntityId``, ISO 8601 ``eventTime``); **201**
  ``{"eventId": ...}``, 400 ``{"message": ...}`` otherwise.
- ``POST /v1/train``: every request is recorded; one less than
  ``train_interval_seconds`` (1800) after the client's previous accepted one is
  answered **429** (and recorded as such), so tests can prove nobody did that.
- ``POST /v1/queries.json``: item scores for ``{"user": ...}``; **429** once the
  monthly quota is used up.

Control views: ``GET /_sandbox/recomendo/trainings``, ``GET /_sandbox/recomendo/events``
(accepted events), ``POST /_sandbox/recomendo/expire-tokens`` (every token issued
so far is expired now). Config ``expire_tokens_after_events: N`` does the same by
itself once N more events were accepted (a token running out mid-batch).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import random
import re
import threading
import time
import uuid
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from include.sandbox.core import TenantApp, Vendor, bearer_token, credential_prefix, tenant_name, tenant_prefix

PREFIX = "/recomendo"
SERVICES = {
    "auth": ("/v1/auth",),
    "client": ("/v1/usage", "/v1/train"),
    "events": ("/v1/events.json",),
    "predictions": ("/v1/queries.json",),
}
_KEY = b"recomendo-sandbox-signing-key"
RESERVED_EVENTS = frozenset({"$set", "$unset", "$delete"})
BUILTIN_ENTITY_TYPES = frozenset({"pio_pr"})
# ISO 8601 date-time as Joda's dateTimeParser takes it: optional fraction, Z or an offset with or without colon.
_ISO = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})T(?P<time>\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?)(?P<zone>Z|[+-]\d{2}(:?\d{2})?)?$"
)
UNAUTHORIZED = {"message": "Unauthorized"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_jwt(client_id: str, issued: float, lifetime: float) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {
        "clientId": client_id,
        "jwtVersion": "0001",
        "iat": issued,
        "exp": issued + lifetime,
        "jti": uuid.uuid4().hex,
    }
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = _b64(hmac.new(_KEY, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


def read_jwt(token: str) -> dict[str, Any] | None:
    """The claims of a token this sandbox signed, or ``None``."""
    try:
        header, payload, signature = token.split(".")
        expected = _b64(hmac.new(_KEY, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, signature):
            return None
        claims = json.loads(_unb64(payload))
        return claims if isinstance(claims, dict) else None
    except (ValueError, binascii.Error):
        return None


def parse_event_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"eventTime must be an ISO 8601 string, not {value!r}")
    match = _ISO.match(value.strip())
    if not match:
        raise ValueError(f"Cannot convert {value} to DateTime: not ISO 8601")
    text = value.strip()
    zone = match.group("zone")
    if zone and zone != "Z" and ":" not in zone:
        text = text[: -len(zone)] + (zone[:3] + ":" + zone[3:] if len(zone) == 5 else zone + ":00")
    text = text.replace("Z", "+00:00")
    frac = re.search(r"\.(\d+)", text)
    if frac and len(frac.group(1)) > 6:
        text = text.replace(frac.group(0), "." + frac.group(1)[:6])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"Cannot convert {value} to DateTime: {exc}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _reserved(name: str) -> bool:
    return name.startswith("$") or name.startswith("pio_")


def validate_event(body: Any) -> str | None:
    """PredictionIO's ``EventValidation`` (and its JSON reader): the message of the first rule broken."""
    if not isinstance(body, dict):
        return "the request body must be a JSON object"
    for key in ("event", "entityType", "entityId"):
        if key not in body:
            return f"field {key} is required"
        if not isinstance(body[key], str):
            return f"field {key} must be a string"
    for key in ("targetEntityType", "targetEntityId"):
        if key in body and body[key] is not None and not isinstance(body[key], str):
            return f"field {key} must be a string"
    event, entity_type, entity_id = body["event"], body["entityType"], body["entityId"]
    target_type, target_id = body.get("targetEntityType"), body.get("targetEntityId")
    properties = body.get("properties") or {}
    if not isinstance(properties, dict):
        return "properties must be a JSON object"
    if not event:
        return "event must not be empty."
    if not entity_type:
        return "entityType must not be empty string."
    if not entity_id:
        return "entityId must not be empty string."
    if target_type == "":
        return "targetEntityType must not be empty string"
    if target_id == "":
        return "targetEntityId must not be empty string."
    if (target_type is None) != (target_id is None):
        return "targetEntityType and targetEntityId must be specified together."
    if event == "$unset" and not properties:
        return "properties cannot be empty for $unset event"
    if _reserved(event) and event not in RESERVED_EVENTS:
        return f"{event} is not a supported reserved event name."
    if event in RESERVED_EVENTS and (target_type is not None or target_id is not None):
        return f"Reserved event {event} cannot have targetEntity"
    if _reserved(entity_type) and entity_type not in BUILTIN_ENTITY_TYPES:
        return f"The entityType {entity_type} is not allowed. 'pio_' is a reserved name prefix."
    if target_type is not None and _reserved(target_type) and target_type not in BUILTIN_ENTITY_TYPES:
        return f"The targetEntityType {target_type} is not allowed. 'pio_' is a reserved name prefix."
    for key in properties:
        if _reserved(str(key)):
            return f"The property {key} is not allowed. 'pio_' is a reserved name prefix."
    if "eventTime" in body:
        try:
            parse_event_time(body["eventTime"])
        except ValueError as exc:
            return str(exc)
    return None


class Store:
    """What the sandbox remembers between requests (reset by ``POST /_sandbox/reset``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.events: list[dict[str, Any]] = []
            self.trainings: list[dict[str, Any]] = []
            self.auths: list[dict[str, Any]] = []
            self.queries: Counter[tuple[str, str]] = Counter()
            self.tokens_valid_after = 0.0  # tokens issued before this instant count as expired
            self.events_since_expiry_rule = 0


def _day_use(client: str, day: date) -> int:
    rnd = random.Random(hashlib.sha256(f"use:{client}:{day}".encode()).digest())
    return 0 if day.day <= 2 else rnd.randint(50, 900)


def usage_report(
    client: str, today: date, monthly_quota: int, plan: str, queries: Counter[tuple[str, str]] | None = None
) -> dict[str, Any]:
    """The report as read on ``today``: from the 1st of its month to ``today``; ``queries`` counts the
    queries made per ``(client, day)``."""
    start = today.replace(day=1)
    remaining = monthly_quota
    queried = queries or Counter()
    usages = []
    for n in range((today - start).days + 1):
        day = start + timedelta(days=n)
        used = min(remaining, _day_use(client, day) + queried[(client, day.isoformat())])
        remaining -= used
        usages.append({"date": day.isoformat(), "userQuota": used, "remainingQuota": remaining})
    return {"usagePlan": plan, "startDate": start.isoformat(), "endDate": today.isoformat(), "usages": usages}


def sandbox_today(config: dict[str, Any]) -> date:
    """The sandbox's day: ``today`` when pinned (the next day from ``rollover_at`` on), else the UTC date."""
    pinned = config.get("today")
    if not pinned:
        return datetime.now(timezone.utc).date()
    day = date.fromisoformat(pinned)
    rollover = config.get("rollover_at")
    return day + timedelta(days=1) if rollover is not None and time.time() >= float(rollover) else day


def create_app(config: dict[str, Any], store: Store) -> FastAPI:
    app = FastAPI(title="Recomendo sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    app.sandbox_reset = store.reset  # type: ignore[attr-defined]

    def answer(body: Any, status: int = 200) -> Response:
        return Response(json.dumps(body), status_code=status, media_type="application/json")

    def today() -> date:
        return sandbox_today(config)

    def client_of(request: Request) -> str | None:
        token = bearer_token(request.scope)
        claims = read_jwt(token) if token else None
        if not claims or not isinstance(claims.get("clientId"), str):
            return None
        now = time.time()
        if float(claims.get("exp", 0)) <= now or float(claims.get("iat", 0)) < store.tokens_valid_after:
            return None
        return claims["clientId"]

    async def auth(request: Request) -> Response:
        value = request.headers.get("authorization", "")
        if not value.lower().startswith("basic "):
            return answer(UNAUTHORIZED, 401)
        try:
            client_id, _, secret = base64.b64decode(value[6:].strip(), validate=True).decode().partition(":")
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return answer(UNAUTHORIZED, 401)
        if not (client_id.startswith(credential_prefix()) and secret.startswith(credential_prefix())):
            return answer(UNAUTHORIZED, 401)
        issued = time.time()
        with store.lock:
            store.auths.append({"t": issued, "client": client_id})
        token = make_jwt(client_id, issued, float(config.get("token_lifetime", 3600)))
        return answer(
            {"success": True, "messageCode": "CLIENT_AUTHENTICATED", "payload": {"token": token, "tokenType": "Bearer"}}
        )

    async def usage(request: Request) -> Response:
        client = client_of(request)
        if client is None:
            return answer(UNAUTHORIZED, 401)
        day = today()
        with store.lock:
            queried = Counter(store.queries)
        report = usage_report(
            client,
            day,
            int(config.get("monthly_quota", 100_000)),
            str(config.get("usage_plan", "PROFESSIONAL")),
            queried,
        )
        return answer({"success": True, "messageCode": "USAGE_REPORT_AVAILABLE", "payload": report})

    async def events(request: Request) -> Response:
        client = client_of(request)
        if client is None:
            return answer(UNAUTHORIZED, 401)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return answer({"message": "the request body is not JSON"}, 400)
        problem = validate_event(body)
        if problem:
            return answer({"message": problem}, 400)
        event_id = _b64(uuid.uuid4().bytes + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()[:16])
        with store.lock:
            store.events.append({"eventId": event_id, "client": client, "t": time.time(), **body})
            limit = config.get("expire_tokens_after_events")
            if limit:
                store.events_since_expiry_rule += 1
                if store.events_since_expiry_rule >= int(limit):
                    store.tokens_valid_after = time.time()
                    store.events_since_expiry_rule = 0
                    config["expire_tokens_after_events"] = None  # once
        return answer({"eventId": event_id}, 201)

    async def train(request: Request) -> Response:
        client = client_of(request)
        if client is None:
            return answer(UNAUTHORIZED, 401)
        interval = float(config.get("train_interval_seconds", 1800))
        now = time.time()
        with store.lock:
            accepted = [t["t"] for t in store.trainings if t["client"] == client and t["status"] == 200]
            refused = bool(accepted) and now - accepted[-1] < interval
            store.trainings.append({"t": now, "client": client, "status": 429 if refused else 200})
        if refused:
            wait = interval - (now - accepted[-1])
            body = {
                "success": False,
                "messageCode": "TRAIN_LIMIT_EXCEEDED",
                "message": "Training requests are limited to one every 30 minutes",
                "payload": None,
            }
            return Response(
                json.dumps(body),
                status_code=429,
                media_type="application/json",
                headers={"Retry-After": f"{max(1, round(wait))}"},
            )
        return answer({"success": True, "messageCode": "EXECUTE_TRAIN_SCHEDULED", "payload": None})

    async def queries(request: Request) -> Response:
        client = client_of(request)
        if client is None:
            return answer(UNAUTHORIZED, 401)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return answer({"message": "the request body is not JSON"}, 400)
        if not isinstance(body, dict):
            return answer({"message": "the query must be a JSON object"}, 400)
        day = today()
        with store.lock:
            queried = Counter(store.queries)
        report = usage_report(client, day, int(config.get("monthly_quota", 100_000)), "", queried)
        if report["usages"][-1]["remainingQuota"] <= 0:
            return answer({"message": "Monthly quota exhausted"}, 429)
        with store.lock:
            store.queries[(client, day.isoformat())] += 1
            mine = [e for e in store.events if e["client"] == client]
        user = str(body.get("user", ""))
        seen = {e.get("targetEntityId") for e in mine if e.get("entityId") == user}
        popularity = Counter(e["targetEntityId"] for e in mine if e.get("targetEntityType") == "item")
        ranked = [item for item, _ in popularity.most_common() if item not in seen]
        num = int(body.get("num", 10) or 10)
        total = sum(popularity.values()) or 1
        return answer(
            {"itemScores": [{"item": item, "score": round(popularity[item] / total * 10, 6)} for item in ranked[:num]]}
        )

    routes = {
        "/v1/auth": ("POST", auth),
        "/v1/usage": ("GET", usage),
        "/v1/events.json": ("POST", events),
        "/v1/train": ("POST", train),
        "/v1/queries.json": ("POST", queries),
    }
    for service, paths in SERVICES.items():
        for path in paths:
            method, endpoint = routes[path]
            app.add_api_route(path, endpoint, methods=[method])
            app.add_api_route(f"/{service}{path}", endpoint, methods=[method])
    return app


_STORE = Store()


def token_of(scope: dict[str, Any]) -> str | None:
    return bearer_token(scope)


def vendor(tenant: str = "") -> Vendor:
    # Recomendo documents no request rate limit; ``rate_limit`` may be set to test one.
    config: dict[str, Any] = {
        "token_lifetime": 3600,
        "train_interval_seconds": 1800,
        "monthly_quota": 100_000,
        "usage_plan": "PROFESSIONAL",
        "today": None,
        "rollover_at": None,
        "expire_tokens_after_events": None,
        "latency_ms": 0,
    }
    # One store for both tenants: everything in it is per client id, and the control routes read it.
    return Vendor(
        name=tenant_name("recomendo", tenant),
        prefix=tenant_prefix(PREFIX, tenant),
        app=TenantApp(create_app(config, _STORE), tenant),
        token_of=token_of,
        config=config,
    )


def control_routes(control: FastAPI, state: Any) -> None:
    @control.get("/_sandbox/recomendo/trainings")
    def trainings(client: str | None = None) -> list[dict[str, Any]]:
        with _STORE.lock:
            return [dict(t) for t in _STORE.trainings if client is None or t["client"] == client]

    @control.get("/_sandbox/recomendo/events")
    def accepted_events(client: str | None = None) -> list[dict[str, Any]]:
        with _STORE.lock:
            return [dict(e) for e in _STORE.events if client is None or e["client"] == client]

    @control.get("/_sandbox/recomendo/usage")
    def final_usage(client: str, day: str, monthly_quota: int = 100_000) -> dict[str, Any]:
        """The report as it stands at the end of ``day``, every query made counted: the vendor's final
        word on a month once ``day`` is its last."""
        with _STORE.lock:
            queried = Counter(_STORE.queries)
        return usage_report(client, date.fromisoformat(day), monthly_quota, "", queried)

    @control.get("/_sandbox/recomendo/auths")
    def auths(client: str | None = None) -> list[dict[str, Any]]:
        with _STORE.lock:
            return [dict(a) for a in _STORE.auths if client is None or a["client"] == client]

    @control.post("/_sandbox/recomendo/expire-tokens")
    def expire_tokens() -> dict[str, Any]:
        with _STORE.lock:
            _STORE.tokens_valid_after = time.time()
        return {"ok": True}


def connection(base_url: str, suffix: str = "", tenant: str = "") -> tuple[str, dict[str, Any]]:
    """``recomendo_default`` pointed at this sandbox, each service at its own URL as in production;
    ``recomendo_<tenant>`` at another tenant (credentials starting with ``tenant<name>``)."""
    root = f"{base_url}{tenant_prefix(PREFIX, tenant)}"
    cred = credential_prefix(tenant)
    return f"recomendo_{tenant or 'default'}", {
        "conn_type": "recomendo",
        "login": f"{cred}-recomendo{suffix}",
        "password": f"{cred}-secret{suffix}",
        "extra": {
            "auth_url": f"{root}/auth",
            "client_url": f"{root}/client",
            "events_url": f"{root}/events",
            "predictions_url": f"{root}/predictions",
        },
    }
