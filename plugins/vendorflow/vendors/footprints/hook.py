"""Footprints for Retail: leads, reference data, customers and loyalty codes.

Authentication is ``POST /api/token`` with Basic ``key:secret`` and one of three
grant types; the access token then rides in the query string of every call
(``access_token=...``). It is cached by :class:`~vendorflow.http.tokens.TokenManager`
(shared by the tasks and processes that use the credential), refreshed once on a
401, registered with Airflow's secrets masker, and never part of an endpoint
text: :meth:`VendorClient.describe` only sees the parameters we pass, and the
token is added to the URL by :class:`~vendorflow.http.auth.QueryTokenAuth`
when the request is prepared.

Pagination follows each endpoint's own signal: leads stop at the first empty
page (or at ``X-Total-Pages`` when a deployment sends it), the reference lists
at ``X-Total-Pages``, loyalty codes at ``totalResults``. A short page is never
taken as the end: the server cuts ``pageSize`` to a cap it does not announce.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from functools import cached_property
from typing import Any, Literal

from vendorflow.hook import VendorHook
from vendorflow.http.auth import OAuth2ClientCredentials, QueryTokenAuth
from vendorflow.http.client import VendorClient
from vendorflow.http.paginate import PageNumberPaginator, iterate_pages, records_at
from vendorflow.http.ratelimit import budget_key, shared_limiter
from vendorflow.http.records import Records, joined

GrantType = Literal["client_credentials", "pin", "password"]
GRANT_TYPES: tuple[str, ...] = ("client_credentials", "pin", "password")
TOTAL_PAGES = "X-Total-Pages"
TOTAL_RECORDS = "X-Records"
LEAD_STATUSES: tuple[str, ...] = ("prospect", "lead", "sale_lead", "opportunity", "customer", "lost")


def _day(value: date | str) -> str:
    return value.isoformat() if isinstance(value, date) else date.fromisoformat(str(value)).isoformat()


class FootprintsHook(VendorHook):
    """Reads Footprints' leads, reference lists, customers and loyalty campaigns and codes.

    Connection: ``host`` the tenant's base URL (``/api/...`` is appended),
    ``login`` the API key, ``password`` the API secret; extras ``grant_type``
    (``client_credentials``, ``pin`` or ``password``), ``pin``, ``username``,
    ``user_password``, ``page_size`` (leads per page asked for, 500),
    ``requests_per_second`` (20, shared by every task and worker using the key)
    and the common ones (``concurrency``: lead pages in flight at once).
    """

    conn_name_attr = "footprints_conn_id"
    default_conn_name = "footprints_default"
    conn_type = "footprints"
    hook_name = "Footprints for Retail"
    vendor_name = "Footprints"

    # -- configuration ------------------------------------------------------------------

    @cached_property
    def grant(self) -> dict[str, str]:
        """The token request's form, checked against the chosen grant type."""
        grant = self.extra_str("grant_type") or "client_credentials"
        if grant not in GRANT_TYPES:
            raise self.config_error(f"extra 'grant_type' must be one of {', '.join(GRANT_TYPES)}, not {grant!r}")
        form = {"grant_type": grant}
        if grant == "pin":
            pin = self.extra_str("pin", required=True) or ""
            if not pin.strip().isdigit():
                raise self.config_error("extra 'pin' must be digits (grant_type 'pin')")
            form["pin"] = pin.strip()
        elif grant == "password":
            form["username"] = self.extra_str("username", required=True) or ""
            form["password"] = self.extra_str("user_password", required=True) or ""
        return form

    @property
    def page_size(self) -> int:
        return self.extra_int("page_size")

    def _credentials(self) -> tuple[str, str]:
        return self.secret("login", "Footprints API key"), self.secret("password", "Footprints API secret")

    # -- HTTP ---------------------------------------------------------------------------

    def build_client(self) -> VendorClient:
        key, secret = self._credentials()
        grant = self.grant
        base = self.base_url()
        rps = self.extra_float("requests_per_second")
        who = "\0".join([base, key, grant["grant_type"], grant.get("pin", ""), grant.get("username", "")])
        token = OAuth2ClientCredentials(
            budget_key("footprints-token", who),
            "/api/token",
            grant,
            basic=(key, secret),
            label=f"grant {grant['grant_type']}",
        )
        return VendorClient(
            vendor=self.vendor_name,
            base_url=base,
            auth=QueryTokenAuth(token, "access_token"),
            limiter=shared_limiter("footprints", key, rps),
            retry=self.retry_policy(),
            timeout=self.timeout(),
            request_deadline=self.request_deadline(),
            headers={"Accept": "application/json"},
            pool_size=self.concurrency * 2,
            secrets=[secret, grant.get("pin", ""), grant.get("password", "")],
        )

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        body, _ = self.client.get_json(path, params=dict(params or {}))
        return body

    def _object(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self.client.get_object(path, params=dict(params or {}))

    def _wrapped(self, path: str, key: str, params: Mapping[str, Any] | None = None) -> Records:
        source = self.client.describe("GET", path, params)
        return Records(records_at(self._get(path, params), key, vendor=self.vendor_name, endpoint=source), source)

    # -- reference lists (X-Total-Pages) -----------------------------------------------

    def list_pages(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[Records]:
        """Every page of a reference list, to ``X-Total-Pages`` (or the first empty page without it)."""
        paginator = PageNumberPaginator(total_pages_header=TOTAL_PAGES, total_records_header=TOTAL_RECORDS)
        return iterate_pages(self.client, path, params=params, paginator=paginator)

    def _list(self, path: str, params: Mapping[str, Any] | None = None) -> Records:
        return joined(self.list_pages(path, params))

    def catalogues(self) -> Records:
        """Offer categories (``GET /api/offerCategory``)."""
        return self._list("/api/offerCategory")

    def offers(self) -> Records:
        return self._list("/api/offer")

    def skus(self) -> Records:
        return self._list("/api/sku")

    def locations(self, *, country_name: str | None = None, county_name: str | None = None) -> Records:
        params = {k: v for k, v in (("country_name", country_name), ("county_name", county_name)) if v}
        return self._list("/api/location", params)

    def channels(self) -> Records:
        return self._list("/api/channels")

    def offline_campaigns(self) -> Records:
        return self._list("/api/offlineCampaign")

    # -- leads --------------------------------------------------------------------------

    def lead_pages(
        self,
        start: date | str,
        end: date | str,
        *,
        page_size: int | None = None,
        concurrency: int | None = None,
        expected_records: int | None = None,
    ) -> Iterator[Records]:
        """The leads created from ``start`` to ``end`` (inclusive), page by page, in the vendor's order.

        Page 1 comes first; if it announces the page count (``X-Total-Pages``) the
        rest are fetched ``concurrency`` at a time, otherwise ahead in windows of
        ``concurrency`` until the first empty page (``X-Records`` is kept for the
        row-count check, not taken as the end). Pages are yielded in order and at
        most ``concurrency`` wait in memory. ``expected_records`` (what the window
        held last time) asks the pages it should take together with the first.
        """
        paginator = PageNumberPaginator(
            size_param="pageSize",
            size=page_size or self.page_size,
            total_pages_header=TOTAL_PAGES,
            total_records_header=TOTAL_RECORDS,
            records_decide=False,
        )
        return iterate_pages(
            self.client,
            "/api/lead",
            params={"startDate": _day(start), "endDate": _day(end)},
            paginator=paginator,
            concurrency=concurrency or self.concurrency,
            expected_records=expected_records,
        )

    def leads(self, start: date | str, end: date | str, **kwargs: Any) -> Records:
        """All leads of the window in one list (for small windows; DAGs stream :meth:`lead_pages`)."""
        return joined(self.lead_pages(start, end, **kwargs))

    def lead_actions(self, lead_id: str) -> Records:
        return self._wrapped(f"/api/lead/actions/{lead_id}", "data")

    def lead_action_types(self) -> Records:
        return self._wrapped("/api/lead/action-types", "data")

    # -- customers ----------------------------------------------------------------------

    def customer(self, *, email: str, phone: str) -> dict[str, Any]:
        """The customer profile for an e-mail and phone (``GET /api/client``)."""
        return self._object("/api/client", {"userEmail": email, "userPhone": phone})

    # -- loyalty ------------------------------------------------------------------------

    def active_loyalty_campaigns(self) -> Records:
        return self._wrapped("/api/loyaltyCode/active-campaigns", "campaigns")

    def loyalty_campaigns(self) -> Records:
        return self._wrapped("/api/loyaltyCode/campaigns", "campaigns")

    def loyalty_code_pages(
        self, *, campaign_internal_id: str | None = None, search_term: str | None = None
    ) -> Iterator[Records]:
        """Allocated, redeemed and blocked codes (``POST /api/loyaltyCode/list``), paged to ``totalResults``."""
        form = {k: v for k, v in (("campaignInternalId", campaign_internal_id), ("searchTerm", search_term)) if v}
        paginator = PageNumberPaginator(total_records_key="totalResults")
        return iterate_pages(
            self.client,
            "/api/loyaltyCode/list",
            params=form,
            paginator=paginator,
            records_key="clients",
            method="POST",
            form=True,
        )

    def loyalty_codes(self, **kwargs: Any) -> Records:
        return joined(self.loyalty_code_pages(**kwargs))

    # -- connection test ----------------------------------------------------------------

    def ping(self) -> str:
        channels = next(iter(self.list_pages("/api/channels")))
        total = channels.total_records if channels.total_records is not None else len(channels)
        return f"Connected to Footprints with grant {self.grant['grant_type']}: {total} channels"


HOOK = FootprintsHook
