"""Recreativ's API as documented (recreativ.txt), with deterministic data for any date.

- ``Auth-Token`` header on every call; a token is valid when it starts with
  ``sandbox`` (so every test can use a budget of its own). Anything else gets
  the documented 401 body.
- JSON by default, XML when the ``Accept`` header asks for ``application/xml``.
- 429 above ``rate_limit`` (5) requests per second per token, in any sliding second.
- Lists are not paged unless ``page_size`` is configured (then Yii2's
  ``X-Pagination-*`` headers and ``page`` parameter, as a Yii2 deployment would).
- Data: ``campaigns`` campaigns (default 50), each with 2-6 ads; statistics are
  a pure function of (ad, date), and campaign statistics are the sum of their
  ads', so a test can check any day's rows independently.
- ``retired`` (``{campaign id: "YYYY-MM-DD"}``): campaigns deleted that day. They
  are listed no more, but the statistics of the days before still hold them, as
  Recreativ's do: a past day's campaigns are not today's list.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from include.sandbox.core import (
    TenantApp,
    Vendor,
    credential_prefix,
    header,
    salted,
    tenant,
    tenant_name,
    tenant_prefix,
    to_xml,
)

PREFIX = "/recreativ/api"
DEFAULT_CAMPAIGNS = 50
TITLES = ["Первая кампания", "Вторая кампания", "Spring sale", "Black Friday", "Retarget: cart", "Brand awareness"]


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(salted(":".join(map(str, parts))).encode()).digest()[:8], "big")


@dataclass(frozen=True)
class World:
    """The account's generated data: a function of the campaign count only."""

    campaigns: int = DEFAULT_CAMPAIGNS
    first_id: int = 1001  # another tenant's campaigns have other ids
    # (campaign id, ISO day): the campaign was deleted that day; it had statistics before it, is listed no more.
    retired: tuple[tuple[int, str], ...] = ()

    def campaign_ids(self) -> list[int]:
        """The campaigns that exist now (the list, a campaign's page)."""
        return self.campaign_ids_on(date.today())

    def campaign_ids_on(self, day: date) -> list[int]:
        """The campaigns that existed on ``day`` (its statistics)."""
        gone = {cid for cid, when in self.retired if date.fromisoformat(when) <= day}
        return [cid for cid in (self.first_id + i for i in range(self.campaigns)) if cid not in gone]

    def campaign(self, campaign_id: int) -> dict[str, Any]:
        i = campaign_id - self.first_id
        return {
            "id": campaign_id,
            "title": f"{TITLES[i % len(TITLES)]} #{campaign_id}",
            "active": 0 if i % 7 == 6 else 1,
            "maxclicks": (i % 5) * 1000,
            "maxmoney": f"{(i % 4) * 25}.0000",
            "isRetarget": 1 if i % 6 == 4 else 0,
        }

    def offer_ids(self, campaign_id: int) -> list[int]:
        return [campaign_id * 10 + j for j in range(1, 2 + _seed("offers", campaign_id) % 5 + 1)]

    def offer(self, offer_id: int) -> dict[str, Any]:
        campaign_id = offer_id // 10
        rnd = random.Random(_seed("offer", offer_id))
        return {
            "id": offer_id,
            "title": f"Ad {offer_id}",
            "campaignId": campaign_id,
            "img": {
                "url": f"https://img.example/{offer_id}.jpg",
                "allowedSizes": "100x100,200x200",
                "pattern": "{w}x{h}",
            },
            "opis": "Lorem ipsum",
            "cost": f"{rnd.randint(1, 500)}.00",
            "url": f"https://shop.example/p/{offer_id}",
            "url_mobile": f"https://m.shop.example/p/{offer_id}",
            "stavka": round(rnd.uniform(0.1, 2.0), 2),
            "active": rnd.random() > 0.1,
            "clicks": rnd.randint(0, 10_000),
            "views": rnd.randint(10_000, 1_000_000),
            "money": round(rnd.uniform(0, 5_000), 2),
            "todayclicks": rnd.randint(0, 100),
            "todayviews": rnd.randint(0, 10_000),
            "todaymoney": round(rnd.uniform(0, 50), 2),
        }

    def offer_day(self, offer_id: int, day: date) -> dict[str, Any] | None:
        """The ad's statistics on ``day``; ``None`` when it had no activity."""
        if self.campaign(offer_id // 10)["active"] == 0:
            return None
        rnd = random.Random(_seed("stat", offer_id, day.isoformat()))
        if rnd.random() < 0.15:
            return None
        views = rnd.randint(1, 50_000)
        clicks = int(views * rnd.uniform(0, 0.05))
        money = (Decimal(clicks) * Decimal(rnd.randint(5, 80)) / 100).quantize(Decimal("0.0001"))
        return {"offerId": offer_id, "date": day.isoformat(), "views": views, "clicks": clicks, "money": f"{money}"}

    def campaign_day(self, campaign_id: int, day: date) -> dict[str, Any] | None:
        rows = [r for o in self.offer_ids(campaign_id) if (r := self.offer_day(o, day))]
        if not rows:
            return None
        money = sum(Decimal(r["money"]) for r in rows)
        return {
            "campaignId": campaign_id,
            "date": day.isoformat(),
            "views": sum(r["views"] for r in rows),
            "clicks": sum(r["clicks"] for r in rows),
            "money": f"{money:.4f}",
        }


USERS = [
    {
        "id": 1,
        "username": "sandbox",
        "email": "owner@example.com",
        "type": "advertiser",
        "url": "https://example.com",
        "date": "2015-02-18",
        "maxmoney": 100.0,
        "name": "Sandbox Owner",
        "telegram": "",
        "skype": "",
        "phone": "+70000000000",
        "balance": 1234.5,
        "parentId": None,
    },
    {
        "id": 2,
        "username": "client-a",
        "email": "a@example.com",
        "type": "advertiser",
        "url": "https://a.example",
        "date": "2016-03-01",
        "maxmoney": 50.0,
        "name": "Client A",
        "telegram": "",
        "skype": "",
        "phone": "",
        "balance": 10.0,
        "parentId": 1,
    },
    {
        "id": 3,
        "username": "client-b",
        "email": "b@example.com",
        "type": "publisher",
        "url": "https://b.example",
        "date": "2017-04-02",
        "maxmoney": 0.0,
        "name": "Client B",
        "telegram": "",
        "skype": "",
        "phone": "",
        "balance": 0.0,
        "parentId": 1,
    },
]
SITE_CATEGORIES = [{"id": 1, "parent_id": None, "title": "News"}, {"id": 2, "parent_id": 1, "title": "Sports"}]
SITES = [{"id": 10 + i, "url": f"https://site{i}.example", "category_id": str(1 + i % 2)} for i in range(3)]
BLOCKS = {
    10 + i: [{"id": 100 + 10 * i + j, "bn": f"blk{i}{j}", "title": f"Block {j}"} for j in range(2)] for i in range(3)
}
CAMPAIGN_CATEGORIES = [
    {"id": 1, "parent_id": None, "title": "Retail"},
    {"id": 2, "parent_id": None, "title": "Finance"},
]


def token_of(scope: dict[str, Any]) -> str | None:
    return header(scope, "auth-token")


def _error(name: str, message: str, status: int) -> dict[str, Any]:
    return {"name": name, "message": message, "code": 0, "status": status}


def throttled(window: float) -> tuple[int, dict[str, str], bytes]:
    import json

    body = json.dumps(_error("Too Many Requests", "Rate limit exceeded.", 429)).encode()
    return (
        429,
        {
            "content-type": "application/json; charset=UTF-8",
            "x-rate-limit-limit": "5",
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": f"{window:g}",
            "retry-after": f"{window:g}",
        },
        body,
    )


def create_app(config: dict[str, Any]) -> FastAPI:
    app = FastAPI(title="Recreativ sandbox", openapi_url=None, docs_url=None, redoc_url=None)

    def world() -> World:
        retired = tuple(sorted((int(k), str(v)) for k, v in (config.get("retired") or {}).items()))
        return World(
            campaigns=int(config.get("campaigns", DEFAULT_CAMPAIGNS)),
            first_id=5001 if tenant() else 1001,
            retired=retired,
        )

    def answer(request: Request, body: Any, status: int = 200) -> Response:
        headers: dict[str, str] = {}
        page_size = config.get("page_size")
        if page_size and isinstance(body, list) and status == 200:
            # Yii2's REST paging, off by default (the docs describe none): `page_size` turns it on.
            size = int(page_size)
            total = len(body)
            pages = max(1, -(-total // size))
            page = min(max(1, int(request.query_params.get("page", "1") or 1)), pages)
            body = body[(page - 1) * size : page * size]
            headers = {
                "X-Pagination-Total-Count": str(total),
                "X-Pagination-Page-Count": str(pages),
                "X-Pagination-Current-Page": str(page),
                "X-Pagination-Per-Page": str(size),
            }
        accept = request.headers.get("accept", "")
        if "xml" in accept and "json" not in accept:
            return Response(
                to_xml(body), status_code=status, media_type="application/xml; charset=UTF-8", headers=headers
            )
        import json

        return Response(
            json.dumps(body, ensure_ascii=False),
            status_code=status,
            media_type="application/json; charset=UTF-8",
            headers=headers,
        )

    def not_found(request: Request, what: str) -> Response:
        return answer(request, _error("Not Found", f"Object not found: {what}", 404), 404)

    def bad_request(request: Request, message: str) -> Response:
        return answer(request, _error("Bad Request", message, 400), 400)

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Any) -> Response:
        token = request.headers.get("auth-token", "")
        if not token.startswith(credential_prefix()):
            return answer(request, _error("Unauthorized", "You are requesting with an invalid credential.", 401), 401)
        return await call_next(request)

    def flt(request: Request, name: str) -> str | None:
        value = request.query_params.get(f"filter[{name}]")
        return value if value not in (None, "") else None

    def parse_day(request: Request, name: str) -> date | None:
        value = flt(request, name)
        if value is None:
            return None
        return date.fromisoformat(value[:10])

    def id_filter(request: Request) -> set[int] | None:
        value = flt(request, "id")
        return {int(v) for v in value.split(",") if v.strip()} if value else None

    @app.get("/me")
    def me(request: Request) -> Response:
        return answer(request, USERS[0])

    @app.get("/advertiser/users")
    def users(request: Request) -> Response:
        return answer(request, USERS[1:])

    @app.get("/advertiser/users/{user_id}")
    def user(request: Request, user_id: int) -> Response:
        found = next((u for u in USERS[1:] if u["id"] == user_id), None)
        if found is None:
            return not_found(request, str(user_id))
        body = dict(found)
        if request.query_params.get("expand") == "campaigns":
            w = world()
            body["campaigns"] = [w.campaign(c) for c in w.campaign_ids() if c % 3 == user_id % 3]
        return answer(request, body)

    @app.get("/webmaster/categories")
    def site_categories(request: Request) -> Response:
        return answer(request, SITE_CATEGORIES)

    @app.get("/webmaster/sites")
    def sites(request: Request) -> Response:
        return answer(request, SITES)

    @app.get("/webmaster/sites/{site_id}")
    def site(request: Request, site_id: int) -> Response:
        found = next((s for s in SITES if s["id"] == site_id), None)
        if found is None:
            return not_found(request, str(site_id))
        body = dict(found)
        if request.query_params.get("expand") == "blocks":
            body["blocks"] = BLOCKS[site_id]
        return answer(request, body)

    @app.get("/webmaster/blocks/{block_id}")
    def block(request: Request, block_id: int) -> Response:
        found = next((b for bl in BLOCKS.values() for b in bl if b["id"] == block_id), None)
        return answer(request, found) if found else not_found(request, str(block_id))

    @app.get("/advertiser/categories")
    def campaign_categories(request: Request) -> Response:
        return answer(request, CAMPAIGN_CATEGORIES)

    @app.get("/advertiser/campaigns")
    def campaigns(request: Request) -> Response:
        w = world()
        wanted = id_filter(request)
        return answer(request, [w.campaign(c) for c in w.campaign_ids() if wanted is None or c in wanted])

    @app.get("/advertiser/campaigns/{campaign_id}")
    def campaign(request: Request, campaign_id: int) -> Response:
        w = world()
        if campaign_id not in w.campaign_ids():
            return not_found(request, str(campaign_id))
        body = w.campaign(campaign_id)
        if request.query_params.get("expand") == "offers":
            body["offers"] = [w.offer(o) for o in w.offer_ids(campaign_id)]
        return answer(request, body)

    @app.get("/advertiser/offers/{offer_id}")
    def offer(request: Request, offer_id: int) -> Response:
        w = world()
        if offer_id // 10 not in w.campaign_ids() or offer_id not in w.offer_ids(offer_id // 10):
            return not_found(request, str(offer_id))
        return answer(request, w.offer(offer_id))

    @app.get("/advertiser/statistics")
    def statistics(request: Request) -> Response:
        w = world()
        scope = request.query_params.get("scope", "campaigns")
        try:
            exact = parse_day(request, "date")
            start = parse_day(request, "dateFrom")
            end = parse_day(request, "dateTo")
        except ValueError:
            return bad_request(request, "Dates must be in ISO 8601 format.")
        if exact is not None:
            start = end = exact
        if start is None and end is None:
            start = end = date.today()
        start = start or end
        end = end or start
        assert start is not None and end is not None
        if end < start or (end - start).days > 366:
            return bad_request(request, "Invalid date range.")
        days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
        if scope == "campaigns":
            wanted = id_filter(request)
            rows = [
                r
                for d in days
                for c in w.campaign_ids_on(d)
                if (wanted is None or c in wanted) and (r := w.campaign_day(c, d))
            ]
            return answer(request, rows)
        if scope != "offers":
            return bad_request(request, f"Unknown scope: {scope}")
        campaign_filter = flt(request, "campaignId")
        if campaign_filter is not None:
            if exact is None:
                return bad_request(request, "filter[date] is required when filter[campaignId] is used.")
            cid = int(campaign_filter)
            on_day = {exact: w.offer_ids(cid) if cid in w.campaign_ids_on(exact) else []}
        else:
            on_day = {d: [o for c in w.campaign_ids_on(d) for o in w.offer_ids(c)] for d in days}
        wanted = id_filter(request)
        rows = [r for d in days for o in on_day[d] if (wanted is None or o in wanted) and (r := w.offer_day(o, d))]
        return answer(request, rows)

    return app


def vendor(tenant: str = "") -> Vendor:
    config: dict[str, Any] = {"rate_limit": 5, "campaigns": 30 if tenant else DEFAULT_CAMPAIGNS, "latency_ms": 0}
    return Vendor(
        name=tenant_name("recreativ", tenant),
        prefix=tenant_prefix(PREFIX, tenant),
        app=TenantApp(create_app(config), tenant),
        token_of=token_of,
        throttled=throttled,
        config=config,
    )


def connection(base_url: str, suffix: str = "", tenant: str = "") -> tuple[str, dict[str, Any]]:
    """``recreativ_default`` pointed at this sandbox (any token starting with ``sandbox`` is valid);
    ``recreativ_<tenant>`` at another tenant (other campaigns, tokens starting with ``tenant<name>``)."""
    return f"recreativ_{tenant or 'default'}", {
        "conn_type": "recreativ",
        "host": f"{base_url}{tenant_prefix(PREFIX, tenant)}",
        "password": f"{credential_prefix(tenant)}-recreativ{suffix}",
        "extra": {"requests_per_second": 5},
    }
