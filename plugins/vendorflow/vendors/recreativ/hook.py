"""Recreativ: the advertising network's REST API (``Auth-Token`` header, 5 requests/s per token).

Every documented read endpoint is a typed method returning the decoded JSON;
lists come back as :class:`Records` (a list that remembers which request it
came from, for error messages).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, Literal

from vendorflow.hook import VendorHook
from vendorflow.http.auth import StaticHeaderAuth
from vendorflow.http.client import VendorClient
from vendorflow.http.paginate import PageNumberPaginator, iterate_pages, records_at
from vendorflow.http.ratelimit import shared_limiter
from vendorflow.http.records import Records, joined

PAGE_COUNT_HEADER = "X-Pagination-Page-Count"


def _day(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else date.fromisoformat(str(value)).isoformat()


class RecreativHook(VendorHook):
    """Reads campaigns, ads, sites and statistics from Recreativ.

    Connection: ``host`` the API root (``https://recreativ.com/api``),
    ``password`` the Auth-Token; extras ``requests_per_second`` (5) and the
    common ones (``concurrency`` for the per-campaign statistics fan-out). The
    connection form is :mod:`vendorflow.vendors.recreativ.form`.
    """

    conn_name_attr = "recreativ_conn_id"
    default_conn_name = "recreativ_default"
    conn_type = "recreativ"
    hook_name = "Recreativ"
    vendor_name = "Recreativ"
    default_host = "https://recreativ.com/api"

    def build_client(self) -> VendorClient:
        token = self.secret("password", "Recreativ Auth-Token")
        rps = self.extra_float("requests_per_second")
        return VendorClient(
            vendor=self.vendor_name,
            base_url=self.base_url(),
            auth=StaticHeaderAuth("Auth-Token", token),
            limiter=shared_limiter("recreativ", token, rps),
            retry=self.retry_policy(),
            timeout=self.timeout(),
            request_deadline=self.request_deadline(),
            headers={"Accept": "application/json", "Content-Type": "application/json; charset=UTF-8"},
            pool_size=self.concurrency * 2,
            secrets=[token],
        )

    # -- plumbing -----------------------------------------------------------------------

    def _list(self, path: str, params: Mapping[str, Any] | None = None) -> Records:
        """A list endpoint's records. The docs describe no paging, but Recreativ is a Yii2 API: if an
        answer carries Yii2's ``X-Pagination-Page-Count``, the remaining pages are fetched too, so a
        paged deployment cannot silently cut a list short."""
        paginator = PageNumberPaginator(
            total_pages_header=PAGE_COUNT_HEADER, one_page_without_count=True, first_page_param=False
        )
        return joined(iterate_pages(self.client, path, params=params, paginator=paginator))

    def _object(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.client.get_object(path, params=dict(params or {}))

    # -- user -------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        return self._object("/me")

    def users(self) -> Records:
        """The current account's referrals."""
        return self._list("/advertiser/users")

    def user(self, user_id: int, *, expand: Literal["campaigns"] | None = None) -> dict[str, Any]:
        return self._object(f"/advertiser/users/{int(user_id)}", {"expand": expand} if expand else None)

    # -- webmaster ----------------------------------------------------------------------

    def site_categories(self) -> Records:
        return self._list("/webmaster/categories")

    def sites(self) -> Records:
        return self._list("/webmaster/sites")

    def site(self, site_id: int, *, expand: Literal["blocks"] | None = None) -> dict[str, Any]:
        return self._object(f"/webmaster/sites/{int(site_id)}", {"expand": expand} if expand else None)

    def block(self, block_id: int) -> dict[str, Any]:
        return self._object(f"/webmaster/blocks/{int(block_id)}")

    # -- advertiser ---------------------------------------------------------------------

    def campaign_categories(self) -> Records:
        return self._list("/advertiser/categories")

    def campaigns(self, ids: Iterable[int] | None = None) -> Records:
        params = {"filter[id]": ",".join(str(int(i)) for i in ids)} if ids else None
        return self._list("/advertiser/campaigns", params)

    def campaign(self, campaign_id: int, *, expand: Literal["offers"] | None = None) -> dict[str, Any]:
        return self._object(f"/advertiser/campaigns/{int(campaign_id)}", {"expand": expand} if expand else None)

    def campaign_offers(self, campaign_id: int) -> Records:
        """The ads (teasers) of a campaign: ``campaigns/{id}?expand=offers``."""
        campaign = self.campaign(campaign_id, expand="offers")
        source = self.client.describe("GET", f"/advertiser/campaigns/{int(campaign_id)}", {"expand": "offers"})
        return Records(records_at(campaign, "offers", vendor=self.vendor_name, endpoint=source), source)

    def offer(self, offer_id: int) -> dict[str, Any]:
        return self._object(f"/advertiser/offers/{int(offer_id)}")

    def campaign_statistics(
        self, date_from: date | str, date_to: date | str, *, ids: Iterable[int] | None = None
    ) -> Records:
        """Per campaign and day, ``date_from`` to ``date_to`` inclusive."""
        params: dict[str, Any] = {
            "scope": "campaigns",
            "filter[dateFrom]": _day(date_from),
            "filter[dateTo]": _day(date_to),
        }
        if ids:
            params["filter[id]"] = ",".join(str(int(i)) for i in ids)
        return self._list("/advertiser/statistics", params)

    def offer_statistics(
        self,
        *,
        day: date | str | None = None,
        date_from: date | str | None = None,
        date_to: date | str | None = None,
        offer_id: int | None = None,
        campaign_id: int | None = None,
    ) -> Records:
        """Per ad (teaser) and day. ``campaign_id`` needs ``day`` (the API's ``filter[date]``)."""
        if campaign_id is not None and day is None:
            raise ValueError("Recreativ's filter[campaignId] requires filter[date]: pass day=")
        params: dict[str, Any] = {"scope": "offers"}
        if day is not None:
            params["filter[date]"] = _day(day)
        if date_from is not None:
            params["filter[dateFrom]"] = _day(date_from)
        if date_to is not None:
            params["filter[dateTo]"] = _day(date_to)
        if offer_id is not None:
            params["filter[id]"] = int(offer_id)
        if campaign_id is not None:
            params["filter[campaignId]"] = int(campaign_id)
        return self._list("/advertiser/statistics", params)

    def ping(self) -> str:
        me = self.me()
        return f"Connected to Recreativ as {me.get('username', '?')} (user {me.get('id', '?')})"


HOOK = RecreativHook
