"""Footprints for Retail's API as documented (footprints.txt), with deterministic data for any date.

- ``POST /api/token`` with ``Authorization: Basic base64(key:secret)`` and a form
  (or query) ``grant_type`` of ``client_credentials``, ``pin`` (with ``pin``) or
  ``password`` (with ``username`` and ``password``); answers the documented body.
  A key and secret are valid when both start with ``sandbox``; a pin must be
  digits; a password grant needs both fields non-empty. Tokens live
  ``token_ttl`` seconds (default: the documented 31535999) and start with
  ``token_prefix`` (default ``fp``), so a test can give them a recognisable shape.
- Every other ``/api`` call needs ``access_token`` in the query string (401 otherwise).
- ``GET /api/lead?startDate=&endDate=&pageSize=&page=``: the leads created on those
  days (inclusive, UTC), as a bare JSON array, oldest first. ``pageSize`` is cut
  to ``page_size_cap`` (100) without saying so; a page past the end is ``[]``.
  With ``lead_headers`` on, the answer also carries ``X-Total-Pages``,
  ``X-Records`` and ``X-Current-Page`` (the documented list endpoints do; the
  lead docs show none, so it is off by default).
- Reference lists (``offer``, ``sku``, ``offerCategory``, ``location``, ``channels``,
  ``offlineCampaign``): ``page`` parameter, ``list_page_size`` (20) records a page,
  ``X-Total-Pages``, ``X-Records``, ``X-Current-Page``.
- Loyalty: ``GET /api/loyaltyCode/active-campaigns``, ``GET /api/loyaltyCode/campaigns``
  (``{"status": "success", "campaigns": [...]}``) and ``POST /api/loyaltyCode/list``
  (form ``campaignInternalId``, ``searchTerm``, ``page``; ``codes_page_size`` (50)
  codes a page, ``{"status", "clients", "totalResults"}``).
- ``GET /api/client?userEmail=&userPhone=``, ``GET /api/lead/actions/{leadId}``,
  ``GET /api/lead/action-types``.
- Data: ``leads_by_day`` (``{"YYYY-MM-DD": n}``) fixes a day's count; otherwise
  weekdays have 60-240 leads and Saturdays 1,500-3,000 (busy days). Every lead is a
  pure function of (day, index), so any page is generated without the others,
  and a test can compute any day's rows independently. With ``status_clock``
  (an ISO instant) leads change after their day as real ones do: about 30% of
  the open ones become ``customer`` 1-6 days after they were created
  (``timestampStatusChange`` and ``updatedAt`` say when), as seen at that instant;
  unset, every lead keeps the status it was created with. Optional fields are
  sometimes missing (``sku``, ``consultant``, ``userEmail``, ``userPhone``, ...).
- ``reject_paths``: paths answered 422 with a message that echoes the request
  URL, access token included, as careless servers do (the leak test's forced failure).
- Control: ``GET /_sandbox/footprints/tokens`` (tokens issued, by grant) and
  ``POST /_sandbox/footprints/revoke`` (every token becomes invalid: the next call gets 401).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import Response

from include.sandbox.core import (
    TenantApp,
    Vendor,
    credential_prefix,
    query_params,
    salted,
    tenant,
    tenant_name,
    tenant_prefix,
)

PREFIX = "/footprints"
STATUSES = ("prospect", "lead", "sale_lead", "opportunity", "customer", "lost")
CODE_STATUSES = ("associated", "redeemed", "blocked")
DEFAULTS: dict[str, Any] = {
    "rate_limit": 25,
    "latency_ms": 0,
    "page_size_cap": 100,
    "default_page_size": 10,
    "list_page_size": 20,
    "codes_page_size": 50,
    "token_ttl": 31535999,
    "token_prefix": "fp",
    "lead_headers": False,
    "leads_by_day": {},
    "status_clock": None,
    "reject_paths": [],
}
FIRST_NAMES = ["Ana", "Mihai", "Ioana", "Andrei", "Elena", "Radu", "Kibo", "Maria", "Dan", "Irina"]
LAST_NAMES = ["Popescu", "Ionescu", "English", "Dumitru", "Stan", "Munteanu", "Georgescu", "Rusu"]
COUNTRIES = ["Romania", "Moldova", "Bulgaria", "Hungary"]
FAMILY = ["single", "married", "relationship"]
DEVICES = ["desktop", "mobile", "tablet"]
MEDIA = ["Earned Media", "Owned Media", "Paid Media"]


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(salted(":".join(map(str, parts))).encode()).digest()[:8], "big")


def oid(*parts: object, epoch: int = 1_530_000_000) -> str:
    """A Mongo ObjectId-shaped id (24 hex digits, creation time first), stable for ``parts``."""
    return f"{epoch:08x}{hashlib.sha256(salted(':'.join(map(str, parts))).encode()).hexdigest()[:16]}"


def iso(moment: datetime) -> str:
    """The vendor's instant format: ``2018-09-24T19:00:00.000Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class World:
    """The tenant's generated data; leads are a pure function of (tenant, day, index)."""

    tenant: str = ""  # caches of generated data are kept per tenant

    catalogues: int = 6
    offers: int = 40
    skus: int = 90
    locations: int = 25
    channels: int = 7
    offline_campaigns: int = 9
    consultants: int = 30
    loyalty_campaigns: int = 6

    # -- reference data ------------------------------------------------------------

    def catalogue_list(self) -> list[dict[str, Any]]:
        return [{"_id": oid("catalogue", i), "name": f"Catalogue {i + 1}"} for i in range(self.catalogues)]

    def offer_list(self) -> list[dict[str, Any]]:
        cats = self.catalogue_list()
        out = []
        for i in range(self.offers):
            rnd = random.Random(_seed("offer", i))
            cat = cats[i % len(cats)]
            price: Any = rnd.choice([rnd.randint(50, 5000), round(rnd.uniform(10, 900), 2)])
            out.append(
                {
                    "_id": oid("offer", i),
                    "name": f"Offer {i + 1}",
                    "price": price,
                    "externalId": f"OF{1000 + i}",
                    "offerCategory": {"_id": cat["_id"], "name": cat["name"]},
                }
            )
        return out

    def sku_list(self) -> list[dict[str, Any]]:
        offers = self.offer_list()
        out = []
        for i in range(self.skus):
            rnd = random.Random(_seed("sku", i))
            offer = offers[i % len(offers)]
            out.append(
                {
                    "_id": oid("sku", i),
                    "name": f"SKU {i + 1}",
                    "price": rnd.randint(10, 9000),
                    "externalId": f"SK{5000 + i}",
                    "quantity": rnd.randint(1, 5),
                    "offer": {"_id": offer["_id"], "name": offer["name"]},
                }
            )
        return out

    def location_list(self) -> list[dict[str, Any]]:
        return [
            {
                "_id": oid("location", i),
                "timestamp": iso(datetime(2018, 8, 7, 10, 29, 7, 932000, timezone.utc)),
                "createdAt": iso(datetime(2018, 8, 7, 10, 29, 7, 932000, timezone.utc) + timedelta(days=i)),
                "areaId": oid("area", i % 4),
                "name": f"Store {i + 1}",
                "description": "09:00-21:00",
                "address": f"Str. Exemplu nr. {i + 1}",
                "__v": 1,
                "coords": [44.4 + i / 100, 26.1 + i / 100],
                "image": "",
            }
            for i in range(self.locations)
        ]

    def channel_list(self) -> list[dict[str, Any]]:
        return [
            {"_id": oid("channel", i), "name": f"Channel {i + 1}", "mediaType": MEDIA[i % len(MEDIA)]}
            for i in range(self.channels)
        ]

    def offline_campaign_list(self) -> list[dict[str, Any]]:
        locations = self.location_list()
        out = []
        for i in range(self.offline_campaigns):
            start = datetime(2024, 1, 1, 11, 0, 18, tzinfo=timezone.utc) + timedelta(days=20 * i)
            out.append(
                {
                    "_id": oid("offline", i),
                    "locationId": locations[i % len(locations)]["_id"],
                    "name": f"Offline campaign {i + 1}",
                    "description": "",
                    "image": None,
                    "type": "offline",
                    "budget": 1000 * (i % 4),
                    "startDate": iso(start),
                    "endDate": iso(start + timedelta(days=90)),
                    "timestamp": iso(start - timedelta(days=1)),
                    "createdAt": iso(start - timedelta(days=1)),
                    "drawFrequency": {
                        "repeats": "none",
                        "frequency": None,
                        "day": None,
                        "end": {"type": "", "value": ""},
                    },
                    "winningType": [],
                    "__v": 0,
                }
            )
        return out

    def consultant(self, i: int) -> dict[str, Any]:
        return {"_id": oid("consultant", i), "name": f"{FIRST_NAMES[i % 10]} {LAST_NAMES[i % 8]}"}

    # -- leads ----------------------------------------------------------------------

    def lead_count(self, day: date, overrides: dict[str, Any]) -> int:
        if day.isoformat() in overrides:
            return int(overrides[day.isoformat()])
        rnd = random.Random(_seed("count", day.isoformat()))
        return rnd.randint(1500, 3000) if day.weekday() == 5 else rnd.randint(60, 240)

    def lead(self, day: date, index: int, count: int, as_of: datetime | None = None) -> dict[str, Any]:
        # All choices come from one SHA-512 of (day, index): cheap enough to serve 200,000 leads a day.
        b = hashlib.sha512(salted(f"lead:{day}:{index}").encode()).digest()
        refs = _references(self)
        slot = 86_400_000 // max(count, 1)  # milliseconds per lead: created times increase within the day
        created = _day_start_ms(day) + index * slot + int.from_bytes(b[0:4], "big") % max(slot, 1)
        client = int.from_bytes(b[4:7], "big") % 50_000
        offers = refs["offers"]
        offer = offers[b[7] % len(offers)]
        record: dict[str, Any] = {
            "_id": f"{created // 1000:08x}{_day_hash(day)}{index:06x}",
            "userFirstName": FIRST_NAMES[b[19] % len(FIRST_NAMES)],
            "userLastName": LAST_NAMES[b[20] % len(LAST_NAMES)],
            "offerId": offer["_id"],
            "industryId": _oid("industry", client % 5),
            "locationId": refs["locations"][b[21] % len(refs["locations"])]["_id"],
            "clientId": _oid("client", client),
            "status": STATUSES[b[14] % len(STATUSES)],
            "userCountry": COUNTRIES[b[15] % len(COUNTRIES)],
            "userFamilyDetails": FAMILY[b[16] % len(FAMILY)],
            "userBirthday": f"Fri Oct 21 {1950 + client % 50} 00:00:00 GMT+0000 (UTC)",
            "userIncome": "" if b[39] < 13 else str(1500 + int.from_bytes(b[17:19], "big") % 10_501),
            "agreeToCollect": b[8] < 204,
            "agreeTandc": True,
            "isAdult": b[9] < 248,
            "isMultipart": b[10] < 26,
            "isComplete": b[11] < 230,
            "timestamp": _iso_ms(created),
            "timestampStatusChange": _iso_ms(created + 60_000 * (int.from_bytes(b[22:24], "big") % 601)),
            "createdAt": _iso_ms(created),
            "actionRequired": b[12] < 128,
            "deviceType": DEVICES[b[13] % len(DEVICES)],
            "offerCategoryId": offer["offerCategory"]["_id"],
            "offerCategory": offer["offerCategory"]["name"],
            "offer": {"_id": offer["_id"], "name": offer["name"], "price": offer["price"]},
            "updatedAt": _iso_ms(created + 1000 * (int.from_bytes(b[24:27], "big") % 432_001)),
        }
        if b[27] < 218:
            user = f"client{client}"
            record["userEmail"] = (f"{user}@example.com", f"{user.capitalize()}@Example.COM", f" {user}@example.org ")[
                b[28] % 3
            ]
        if b[29] < 179:
            digits = f"07{client:08d}"
            record["userPhone"] = (
                digits,
                f"+40 {digits[1:4]} {digits[4:7]} {digits[7:]}",
                f"({digits[:4]}) {digits[4:]}",
            )[b[30] % 3]
        if b[31] < 205:
            record["channelId"] = refs["channels"][b[32] % len(refs["channels"])]["_id"]
        if b[33] < 77:
            record["offlineCampaignId"] = refs["offline"][b[34] % len(refs["offline"])]["_id"]
        if b[35] < 179:
            skus = refs["skus_by_offer"].get(offer["_id"]) or refs["skus"]
            sku = skus[b[36] % len(skus)]
            record["sku"] = {"_id": sku["_id"], "name": sku["name"], "price": sku["price"]}
            record["skuExternalId"] = sku["externalId"]
        if b[37] < 154:
            record["consultant"] = self.consultant(b[38] % self.consultants)
        if as_of is not None and record["status"] not in ("customer", "lost") and b[40] < 77:
            # About 30% of open leads become customers 1 to 6 days (and some minutes) after they were created.
            converted = created + 86_400_000 * (1 + b[41] % 6) + 60_000 * (b[42] % 240)
            if converted <= int(as_of.timestamp() * 1000):
                record["status"] = "customer"
                record["timestampStatusChange"] = _iso_ms(converted)
                record["updatedAt"] = max(record["updatedAt"], _iso_ms(converted))
        return record

    def day_counts(self, start: date, end: date, overrides: dict[str, Any]) -> list[tuple[date, int]]:
        return [
            (start + timedelta(days=n), self.lead_count(start + timedelta(days=n), overrides))
            for n in range((end - start).days + 1)
        ]

    def leads_slice(
        self, start: date, end: date, offset: int, limit: int, overrides: dict[str, Any], as_of: datetime | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """Leads ``offset`` to ``offset + limit`` of the window (oldest first) and the window's total, with
        their status as it is at ``as_of`` (``None``: as created)."""
        counts = self.day_counts(start, end, overrides)
        total = sum(n for _, n in counts)
        out: list[dict[str, Any]] = []
        position = 0
        for day, n in counts:
            lo, hi = max(offset - position, 0), min(offset + limit - position, n)
            out.extend(self.lead(day, i, n, as_of) for i in range(lo, hi))
            position += n
            if position >= offset + limit:
                break
        return out, total

    def find_lead(self, lead_id: str, overrides: dict[str, Any]) -> dict[str, Any] | None:
        try:
            created = datetime.fromtimestamp(int(lead_id[:8], 16), timezone.utc)
            index = int(lead_id[18:], 16)
        except ValueError:
            return None
        day = created.date()
        n = self.lead_count(day, overrides)
        if len(lead_id) != 24 or index >= n:
            return None
        lead = self.lead(day, index, n)
        return lead if lead["_id"] == lead_id else None

    # -- loyalty --------------------------------------------------------------------

    def loyalty_campaign_list(self) -> list[dict[str, Any]]:
        locations = self.location_list()
        out = []
        for i in range(self.loyalty_campaigns):
            rnd = random.Random(_seed("loyalty", i))
            start = datetime(2024, 1, 1, 10, 59, 8, tzinfo=timezone.utc) + timedelta(days=45 * i)
            prizes = [
                {
                    "_id": oid("prize", i, j),
                    "totalCodes": rnd.randint(20, 200),
                    "pointsValue": 10 * (j + 1),
                    "name": f"Prize {j + 1}",
                }
                for j in range(1 + i % 3)
            ]
            out.append(
                {
                    "_id": oid("loyalty", i),
                    "internalId": "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(11)),
                    "name": f"Loyalty campaign {i + 1}",
                    "type": "drive_loyalty" if i % 2 == 0 else "instant_win",
                    "budget": 500 * i,
                    "salesCost": None,
                    "monthlySellingCost": None,
                    "monthlyServicingCost": None,
                    "productionCost": None,
                    "profitabilityTime": None,
                    "retentionRate": None,
                    "landingPageURL": "",
                    "startDate": iso(start),
                    "endDate": iso(start + timedelta(days=60)),
                    "expireCodesDate": iso(start + timedelta(days=365)),
                    "timestamp": iso(start - timedelta(hours=1)),
                    "createdAt": iso(start - timedelta(hours=1)),
                    "__v": 15,
                    "locationId": locations[i % len(locations)]["_id"],
                    "loyaltySettings": {
                        "type": "instant" if i % 2 else "standard",
                        "allowedChars": "",
                        "codeLength": "8",
                        "loyaltyPrizeTypes": prizes,
                    },
                    "extraAllocations": [],
                    "leads": [],
                    "total": 0,
                    "_active": i % 3 != 2,  # sandbox-only; removed before answering
                    "_location_name": locations[i % len(locations)]["name"],
                }
            )
        return out

    def codes(self) -> list[dict[str, Any]]:
        out = []
        for i, campaign in enumerate(self.loyalty_campaign_list()):
            rnd = random.Random(_seed("codes", i))
            prizes = campaign["loyaltySettings"]["loyaltyPrizeTypes"]
            for k in range(rnd.randint(120, 260)):
                client = rnd.randrange(50_000)
                code: dict[str, Any] = {
                    "code": f"{i:X}{''.join(rnd.choice('ABCDEFGHJKLMNPQRSTUVWXYZ23456789') for _ in range(7))}{k:03X}",
                    "campaign": {
                        "_id": campaign["_id"],
                        "internalId": campaign["internalId"],
                        "name": campaign["name"],
                        "type": campaign["type"],
                        "startDate": campaign["startDate"],
                        "endDate": campaign["endDate"],
                        "loyaltySettings": {"type": campaign["loyaltySettings"]["type"]},
                        "expireCodesDate": campaign["expireCodesDate"],
                    },
                    "client": {
                        "_id": oid("client", client),
                        "userFirstName": rnd.choice(FIRST_NAMES),
                        "userLastName": rnd.choice(LAST_NAMES),
                        "userEmail": f"client{client}@example.com",
                        "userPhone": f"07{client:08d}",
                        "userAddress": "",
                    },
                    "status": rnd.choices(CODE_STATUSES, weights=(6, 3, 1))[0],
                    "prize": {"pointsValue": (prize := rnd.choice(prizes))["pointsValue"], "name": prize["name"]},
                }
                if rnd.random() < 0.8:
                    code["hostess"] = {"_id": oid("hostess", client % 12), "name": "Test Hostess"}
                if code["status"] == "blocked" and rnd.random() < 0.5:
                    code["client"] = None  # a blocked code may never have reached a client
                out.append(code)
        return out


def _oid(*parts: object) -> str:
    return _tenant_oid(tenant(), *parts)


@lru_cache(maxsize=65_536)
def _tenant_oid(name: str, *parts: object) -> str:
    return oid(*parts)


def _day_hash(day: date) -> str:
    return _tenant_day_hash(tenant(), day)


@lru_cache(maxsize=512)
def _tenant_day_hash(name: str, day: date) -> str:
    return hashlib.sha256(salted(f"lead:{day}").encode()).hexdigest()[:10]


@lru_cache(maxsize=512)
def _day_start_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()) * 1000


def _iso_ms(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms // 1000, timezone.utc).replace(microsecond=epoch_ms % 1000 * 1000)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@lru_cache(maxsize=4)
def _references(world: World) -> dict[str, Any]:
    skus = world.sku_list()
    by_offer: dict[str, list[dict[str, Any]]] = {}
    for sku in skus:
        by_offer.setdefault(sku["offer"]["_id"], []).append(sku)
    return {
        "offers": world.offer_list(),
        "skus": skus,
        "skus_by_offer": by_offer,
        "locations": world.location_list(),
        "channels": world.channel_list(),
        "offline": world.offline_campaign_list(),
    }


@lru_cache(maxsize=2)
def _codes(world: World) -> list[dict[str, Any]]:
    return world.codes()


def public_campaign(campaign: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in campaign.items() if not k.startswith("_") or k == "_id"}


def active_campaign(campaign: dict[str, Any]) -> dict[str, Any]:
    """The shorter shape of ``active-campaigns``."""
    return {
        "_id": campaign["_id"],
        "internalId": campaign["internalId"],
        "name": campaign["name"],
        "startDate": campaign["startDate"],
        "endDate": campaign["endDate"],
        "expireCodesDate": campaign["expireCodesDate"],
        "loyaltySettings": {
            "loyaltyPrizeTypes": [{"name": p["name"]} for p in campaign["loyaltySettings"]["loyaltyPrizeTypes"]]
        },
        "location": {"name": campaign["_location_name"]},
        "total": 0,
    }


def token_of(scope: dict[str, Any]) -> str | None:
    values = query_params(scope).get("access_token")
    return values[0] if values else None


class Tokens:
    """Issued access tokens and their expiry; forgotten on reset or revoke."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.issued: dict[str, tuple[float, str]] = {}
        self.by_grant: dict[str, int] = {}

    def issue(self, grant: str, ttl: float, prefix: str) -> str:
        value = f"{prefix}{secrets.token_hex(30)}"
        with self.lock:
            self.issued[value] = (time.time() + ttl, grant)
            self.by_grant[grant] = self.by_grant.get(grant, 0) + 1
        return value

    def valid(self, value: str | None) -> bool:
        with self.lock:
            entry = self.issued.get(value or "")
        return entry is not None and entry[0] > time.time()

    def clear(self) -> None:
        with self.lock:
            self.issued.clear()
            self.by_grant.clear()


def _sub_path(request: Request) -> str:
    """The path below the vendor's prefix (a mounted app sees the full path and its mount as ``root_path``)."""
    path, root = request.scope["path"], request.scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def create_app(config: dict[str, Any]) -> FastAPI:
    app = FastAPI(title="Footprints sandbox", openapi_url=None, docs_url=None, redoc_url=None)
    tokens = Tokens()
    app.state.tokens = tokens
    app.sandbox_reset = tokens.clear  # type: ignore[attr-defined]

    def world() -> World:
        return World(tenant=tenant())

    def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(
            json.dumps(body, ensure_ascii=False),
            status_code=status,
            media_type="application/json; charset=utf-8",
            headers=headers,
        )

    def error(message: str, status: int) -> Response:
        return answer({"status": "error", "message": message}, status)

    def paged_list(request: Request, records: list[dict[str, Any]]) -> Response:
        size = int(config.get("list_page_size", 20))
        try:
            page = int(request.query_params.get("page") or 1)
        except ValueError:
            return error("page must be a number", 400)
        pages = max(1, -(-len(records) // size))
        body = records[(page - 1) * size : page * size] if page >= 1 else []
        return answer(
            body,
            headers={
                "Access-Control-Expose-Headers": "X-Total-Pages, X-Records, X-Current-Page",
                "X-Current-Page": str(page),
                "X-Records": str(len(records)),
                "X-Total-Pages": str(pages),
            },
        )

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Response:
        path = _sub_path(request)
        if path in config.get("reject_paths", []):
            # Echoes the whole request line, access token and all, as a careless server would.
            return error(f"Request rejected: {request.method} {path}?{request.url.query}", 422)
        if path.rstrip("/") == "/api/token":
            return await call_next(request)
        if not tokens.valid(request.query_params.get("access_token")):
            return error("Unauthorized: access_token is missing, invalid or expired", 401)
        return await call_next(request)

    @app.post("/api/token")
    async def token(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        try:
            key, _, secret = (
                base64.b64decode(header[6:].strip()).decode().partition(":")
                if header.lower().startswith("basic ")
                else ("", "", "")
            )
        except ValueError:
            key, secret = "", ""
        if not (key.startswith(credential_prefix()) and secret.startswith(credential_prefix())):
            return answer({"error": "invalid_client", "error_description": "Client credentials are invalid"}, 401)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode(), keep_blank_values=True).items()}
        fields = {**dict(request.query_params), **form}
        grant = fields.get("grant_type", "")
        if grant == "pin":
            if not fields.get("pin", "").isdigit():
                return answer(
                    {"error": "invalid_grant", "error_description": "pin is required and must be digits"}, 400
                )
        elif grant == "password":
            if not fields.get("username") or not fields.get("password"):
                return answer(
                    {"error": "invalid_grant", "error_description": "username and password are required"}, 400
                )
        elif grant != "client_credentials":
            return answer(
                {"error": "unsupported_grant_type", "error_description": f"Unsupported grant type: {grant}"}, 400
            )
        ttl = float(config.get("token_ttl", DEFAULTS["token_ttl"]))
        value = tokens.issue(grant, ttl, str(config.get("token_prefix", "fp")))
        body: dict[str, Any] = {
            "access_token": value,
            "token_type": "bearer",
            "expires_in": int(ttl),
            "refresh_token": secrets.token_hex(32),
            "scope": ["app_scope"] + (["hostess_scope"] if grant != "client_credentials" else []),
        }
        if grant != "client_credentials":
            body.update({"hostess_name": "Test Hostess", "hostess_id": oid("hostess", 0)})
        return answer(body)

    @app.get("/api/lead")
    def leads(request: Request) -> Response:
        q = request.query_params
        try:
            start = date.fromisoformat(q.get("startDate", ""))
            end = date.fromisoformat(q.get("endDate", ""))
        except ValueError:
            return error("startDate and endDate are required, format Y-m-d", 400)
        if end < start or (end - start).days > 92:
            return error("Invalid date interval", 400)
        try:
            requested = int(q.get("pageSize") or config.get("default_page_size", 10))
            page = int(q.get("page") or 1)
        except ValueError:
            return error("page and pageSize must be numbers", 400)
        if requested < 1 or page < 1:
            return error("page and pageSize must be positive", 400)
        size = min(requested, int(config.get("page_size_cap", 100)))  # the cap nobody documented
        as_of = config.get("status_clock")
        clock = datetime.fromisoformat(str(as_of).replace("Z", "+00:00")) if as_of else None
        body, total = world().leads_slice(start, end, (page - 1) * size, size, config.get("leads_by_day") or {}, clock)
        headers = None
        if config.get("lead_headers"):
            headers = {
                "X-Total-Pages": str(max(1, -(-total // size))),
                "X-Records": str(total),
                "X-Current-Page": str(page),
            }
        return answer(body, headers=headers)

    @app.get("/api/lead/action-types")
    def action_types() -> Response:
        return answer(
            {
                "data": [
                    {"_id": oid("action-type", i), "name": f"Type {i + 1}", "createdAt": "2019-07-18T12:47:35.847Z"}
                    for i in range(3)
                ]
            }
        )

    @app.get("/api/lead/actions/{lead_id}")
    def lead_actions(lead_id: str) -> Response:
        lead = world().find_lead(lead_id, config.get("leads_by_day") or {})
        if lead is None:
            return error("Lead not found", 404)
        rnd = random.Random(_seed("actions", lead_id))
        return answer(
            {
                "data": [
                    {
                        "_id": oid("action", lead_id, k),
                        "leadId": lead_id,
                        "actionDetail": f"Call {k + 1}",
                        "leadActionTypeId": {"_id": oid("action-type", k % 3), "name": f"Type {k % 3 + 1}"},
                        "attachments": [],
                        "date": lead["createdAt"],
                        "createdAt": lead["createdAt"],
                        "updatedAt": lead["updatedAt"],
                    }
                    for k in range(rnd.randint(0, 3))
                ]
            }
        )

    @app.get("/api/client")
    def client(request: Request) -> Response:
        email = (request.query_params.get("userEmail") or "").strip().lower()
        if not email.startswith("client") or "@" not in email:
            return error("Client not found", 404)
        try:
            number = int(email[6 : email.index("@")])
        except ValueError:
            return error("Client not found", 404)
        return answer(
            {
                "_id": oid("client", number),
                "userFirstName": FIRST_NAMES[number % 10],
                "userLastName": LAST_NAMES[number % 8],
                "userEmail": email,
                "userPhone": request.query_params.get("userPhone") or f"07{number:08d}",
                "timestamp": "2018-08-20T15:35:22.024Z",
                "createdAt": "2018-08-20T15:35:21.962Z",
                "type": "B2C",
                "__v": 2,
                "kidsAge": [],
                "interests": [],
                "preferences": [],
                "employees": [],
                "marketingChannels": [],
                "pointsOfPresence": [],
                "interactionsTimeline": [],
                "personalAssistance": [],
                "leads": [],
            }
        )

    @app.get("/api/offerCategory")
    def catalogues(request: Request) -> Response:
        return paged_list(request, world().catalogue_list())

    @app.get("/api/offer")
    def offers(request: Request) -> Response:
        return paged_list(request, world().offer_list())

    @app.get("/api/sku")
    def skus(request: Request) -> Response:
        return paged_list(request, world().sku_list())

    @app.get("/api/location")
    def locations(request: Request) -> Response:
        return paged_list(request, world().location_list())

    @app.get("/api/channels")
    def channels(request: Request) -> Response:
        return paged_list(request, world().channel_list())

    @app.get("/api/offlineCampaign")
    def offline_campaigns(request: Request) -> Response:
        return paged_list(request, world().offline_campaign_list())

    @app.get("/api/loyaltyCode/active-campaigns")
    def active_campaigns() -> Response:
        return answer(
            {
                "status": "success",
                "campaigns": [active_campaign(c) for c in world().loyalty_campaign_list() if c["_active"]],
            }
        )

    @app.get("/api/loyaltyCode/campaigns")
    def loyalty_campaigns() -> Response:
        return answer({"status": "success", "campaigns": [public_campaign(c) for c in world().loyalty_campaign_list()]})

    @app.post("/api/loyaltyCode/list")
    async def code_list(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode(), keep_blank_values=True).items()}
        try:
            page = int(form.get("page") or 1)
        except ValueError:
            return error("page must be a number", 400)
        wanted = form.get("campaignInternalId") or None
        term = (form.get("searchTerm") or "").upper()
        found = [
            c
            for c in _codes(world())
            if (wanted is None or c["campaign"]["internalId"] == wanted) and term in c["code"]
        ]
        size = int(config.get("codes_page_size", 50))
        return answer(
            {
                "status": "success",
                "clients": found[(page - 1) * size : page * size] if page >= 1 else [],
                "totalResults": len(found),
            }
        )

    return app


def control_routes(control: FastAPI, state: Any) -> None:
    vendor = state.vendors["footprints"]

    @control.get("/_sandbox/footprints/tokens")
    def issued() -> dict[str, Any]:
        tokens: Tokens = vendor.app.state.tokens
        with tokens.lock:
            return {"issued": len(tokens.issued), "by_grant": dict(tokens.by_grant)}

    @control.post("/_sandbox/footprints/revoke")
    def revoke() -> dict[str, Any]:
        vendor.app.state.tokens.clear()
        return {"ok": True}


def vendor(tenant: str = "") -> Vendor:
    config: dict[str, Any] = json.loads(json.dumps(DEFAULTS))
    return Vendor(
        name=tenant_name("footprints", tenant),
        prefix=tenant_prefix(PREFIX, tenant),
        app=TenantApp(create_app(config), tenant),
        token_of=token_of,
        config=config,
    )


def connection(base_url: str, suffix: str = "", tenant: str = "") -> tuple[str, dict[str, Any]]:
    """``footprints_default`` pointed at this sandbox (any key and secret starting with ``sandbox`` are
    valid); ``footprints_<tenant>`` at another tenant (its own data and credentials)."""
    cred = credential_prefix(tenant)
    return f"footprints_{tenant or 'default'}", {
        "conn_type": "footprints",
        "host": f"{base_url}{tenant_prefix(PREFIX, tenant)}",
        "login": f"{cred}-key{suffix}",
        "password": f"{cred}-secret{suffix}",
        "extra": {"grant_type": "client_credentials", "page_size": 500, "requests_per_second": 20},
    }
