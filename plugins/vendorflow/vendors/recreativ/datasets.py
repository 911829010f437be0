"""Recreativ datasets: the campaign list and the day's campaign and ad (offer) statistics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from vendorflow.datasets.spec import Column, DatasetSpec, Expect, ExtractContext, Records, param

if TYPE_CHECKING:
    from vendorflow.vendors.recreativ.hook import RecreativHook


def _hook(ctx: ExtractContext) -> RecreativHook:
    return ctx.hook


def extract_campaigns(ctx: ExtractContext) -> Iterator[Records]:
    yield _hook(ctx).campaigns()


def extract_campaign_statistics(ctx: ExtractContext) -> Iterator[Records]:
    # An inclusive window: filter[dateFrom] = filter[dateTo] = the logical date.
    yield _hook(ctx).campaign_statistics(ctx.dt, ctx.dt)


def extract_offer_statistics(ctx: ExtractContext) -> Iterator[Records]:
    """One request per campaign of the day (``filter[campaignId]`` needs ``filter[date]``), fanned out
    over ``concurrency`` threads; the shared budget, not the thread count, sets the pace."""
    from vendorflow.errors import VendorResponseError
    from vendorflow.http.concurrency import bounded_map

    hook = _hook(ctx)
    # The campaigns that had statistics that day, not today's campaign list: a past day (a lookback, a
    # backfill) keeps the campaigns archived since and gets none created since.
    campaign_ids = sorted(
        {int(r["campaignId"]) for r in hook.campaign_statistics(ctx.dt, ctx.dt) if r.get("campaignId") is not None}
    )
    ctx.progress.set_total(len(campaign_ids), unit="campaigns")

    def fetch(campaign_id: int) -> Records:
        stats = hook.offer_statistics(day=ctx.dt, campaign_id=campaign_id)
        # The Ad Stats model has no campaign id: it is the filter we asked with.
        for record in stats:
            claimed = record.get("campaignId", campaign_id)
            if str(claimed) != str(campaign_id):
                raise VendorResponseError(
                    hook.vendor_name, stats.source, f"returned campaignId {claimed!r} for campaign {campaign_id}"
                )
        return Records(({**r, "campaignId": campaign_id} for r in stats), stats.source)

    yield from bounded_map(fetch, campaign_ids, hook.concurrency)


_NON_NEGATIVE = ("views", "clicks", "money")

# What both statistics scopes report per row, after their ids.
_MEASURES = (
    Column("date", "date", required=True, nullable=False),
    Column("views", "int64", required=True),
    Column("clicks", "int64", required=True),
    Column("money", "decimal", required=True),
)


def _statistics_expectations() -> tuple[Expect, ...]:
    return (
        Expect("ExpectColumnValuesToBeBetween", column="date", min_value=param("dt"), max_value=param("dt")),
        *(Expect("ExpectColumnValuesToBeBetween", column=c, min_value=0) for c in _NON_NEGATIVE),
    )


CAMPAIGNS = DatasetSpec(
    vendor="recreativ",
    name="campaigns",
    notes=("snapshot of the campaign list"),
    description="Every campaign of the account as listed that day (GET /advertiser/campaigns).",
    snapshot=True,
    columns=(
        Column("id", "int64", required=True, nullable=False),
        Column("title", "string"),
        Column("active", "bool"),
        Column("maxclicks", "int64", description="conversion limit"),
        Column("maxmoney", "decimal", description="spending limit"),
        Column("is_retarget", "bool", source="isRetarget"),
    ),
    key=("id",),
    expectations=(
        Expect("ExpectColumnValuesToBeBetween", column="maxclicks", min_value=0),
        Expect("ExpectColumnValuesToBeBetween", column="maxmoney", min_value=0),
    ),
    extract=extract_campaigns,
)

CAMPAIGN_STATISTICS = DatasetSpec(
    vendor="recreativ",
    name="campaign_statistics",
    notes=("`filter[dateFrom]=filter[dateTo]=dt`; re-extracted for 3 days (late clicks and spend)"),
    description="Views, clicks and spend per campaign on the logical date (scope=campaigns).",
    columns=(Column("campaign_id", "int64", source="campaignId", required=True, nullable=False), *_MEASURES),
    key=("campaign_id", "date"),
    expectations=_statistics_expectations(),
    extract=extract_campaign_statistics,
    lookback_days=3,  # Recreativ keeps counting a day's clicks and spend after it (late conversions)
)

OFFER_STATISTICS = DatasetSpec(
    vendor="recreativ",
    name="offer_statistics",
    notes=(
        "one request per campaign that had statistics on `dt` (`filter[campaignId]` needs `filter[date]`), run "
        "as fast as the 5 requests/s budget allows; re-extracted for 3 days"
    ),
    description="Views, clicks and spend per ad (teaser) on the logical date, one request per campaign (scope=offers).",
    columns=(
        Column("offer_id", "int64", source="offerId", required=True, nullable=False),
        Column("campaign_id", "int64", source="campaignId", required=True, nullable=False),
        *_MEASURES,
    ),
    key=("offer_id", "date"),
    expectations=_statistics_expectations(),
    extract=extract_offer_statistics,
    lookback_days=3,
)

DATASETS = (CAMPAIGNS, CAMPAIGN_STATISTICS, OFFER_STATISTICS)
