"""Footprints datasets: the day's leads, six reference snapshots, loyalty campaigns and codes.

Leads flatten their nested ``offer``, ``sku`` and ``consultant`` objects into
columns, keep instants as UTC timestamps and pseudonymise e-mail and phone
(``user_email_hmac``, ``user_phone_hmac``); names and birthdays
are not kept. Every dataset checks its row count against the vendor's own total
(``X-Records``, ``totalResults``) through the ``vendor_records`` parameter the
extractor sets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from vendorflow.datasets.spec import Column, DatasetSpec, Expect, ExtractContext, Records, pages_of, param

if TYPE_CHECKING:
    from vendorflow.vendors.footprints.hook import FootprintsHook

LEAD_STATUSES = ["prospect", "lead", "sale_lead", "opportunity", "customer", "lost"]
CODE_STATUSES = ["associated", "allocated", "redeemed", "blocked"]
OBJECT_ID = r"^[0-9a-f]{24}$"  # MongoDB ObjectId: anything else is a malformed id


def _hook(ctx: ExtractContext) -> FootprintsHook:
    return ctx.hook


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _ids(*columns: str) -> tuple[Expect, ...]:
    return tuple(Expect("ExpectColumnValuesToMatchRegex", column=c, regex=OBJECT_ID) for c in columns)


def _in_the_day(column: str) -> Expect:
    """``column`` falls within the partition's day, ``[dt, dt + 1)``."""
    return Expect(
        "ExpectColumnValuesToBeBetween",
        column=column,
        min_value=param("day_start"),
        max_value=param("day_end"),
        strict_max=True,
    )


def _non_negative(*columns: str) -> tuple[Expect, ...]:
    return tuple(Expect("ExpectColumnValuesToBeBetween", column=c, min_value=0) for c in columns)


ROW_COUNT = Expect("ExpectTableRowCountToEqual", value=param("vendor_records"))


# -- leads ------------------------------------------------------------------------------


def _lead_row(record: dict[str, Any]) -> dict[str, Any]:
    # Get Leads nests sku and consultant; Update Lead answers skuId/consultantId. Accept both.
    if "sku" not in record and record.get("skuId"):
        record["sku"] = {"_id": record["skuId"]}
    if "consultant" not in record and record.get("consultantId"):
        record["consultant"] = {"_id": record["consultantId"]}
    return record


def extract_leads(ctx: ExtractContext) -> Iterator[Records]:
    """The leads created on the logical date (``startDate = endDate = dt``), streamed page by page."""
    received = 0
    announced: int | None = None
    for page in _hook(ctx).lead_pages(ctx.dt, ctx.dt, expected_records=ctx.expected_rows):
        received += len(page)
        announced = page.total_records if page.total_records is not None else announced
        if page.total_pages:
            ctx.progress.set_total(page.total_pages, unit="pages")
        yield Records([_lead_row(dict(r)) for r in page], page.source, number=page.number)
    # Without X-Records the count is what the pages held: the check then guards the pipeline, not the vendor.
    ctx.facts["vendor_records"] = announced if announced is not None else received
    ctx.facts["vendor_records_announced"] = announced is not None


LEADS = DatasetSpec(
    vendor="footprints",
    name="leads",
    notes=(
        "leads created on `dt` (`startDate=endDate=dt`, UTC), with their status as last extracted: each daily run "
        "re-extracts the 7 days before its own and republishes those that changed; nested `offer`, `sku`, "
        "`consultant` flattened (`skuId`/`consultantId` accepted too); names and birthdays dropped"
    ),
    description=(
        "Leads created on the logical date (GET /api/lead, startDate = endDate = dt), nested objects flattened."
    ),
    columns=(
        Column("lead_id", "string", source="_id", required=True, nullable=False),
        Column("status", "string", required=True, nullable=False),
        Column("created_at", "timestamp", source="createdAt", required=True, nullable=False),
        Column("updated_at", "timestamp", source="updatedAt"),
        Column("status_changed_at", "timestamp", source="timestampStatusChange"),
        Column("client_id", "string", source="clientId"),
        Column("location_id", "string", source="locationId"),
        Column("offer_id", "string", source="offerId"),
        Column("offer_name", "string", source="offer.name"),
        Column("offer_price", "decimal", source="offer.price"),
        Column("offer_category_id", "string", source="offerCategoryId"),
        Column("offer_category_name", "string", source="offerCategory"),
        Column("sku_id", "string", source="sku._id"),
        Column("sku_name", "string", source="sku.name"),
        Column("sku_price", "decimal", source="sku.price"),
        Column("sku_external_id", "string", source="skuExternalId"),
        Column("channel_id", "string", source="channelId"),
        Column("consultant_id", "string", source="consultant._id"),
        Column("offline_campaign_id", "string", source="offlineCampaignId"),
        Column("industry_id", "string", source="industryId"),
        Column("user_email", "string", source="userEmail", pii="email"),
        Column("user_phone", "string", source="userPhone", pii="phone"),
        Column("user_country", "string", source="userCountry"),
        Column("user_family_details", "string", source="userFamilyDetails"),
        Column("user_income", "float64", source="userIncome", transform=_blank_is_none),
        Column("agree_to_collect", "bool", source="agreeToCollect"),
        Column("agree_tandc", "bool", source="agreeTandc"),
        Column("is_adult", "bool", source="isAdult"),
        Column("is_multipart", "bool", source="isMultipart"),
        Column("is_complete", "bool", source="isComplete"),
        Column("action_required", "bool", source="actionRequired"),
        Column("device_type", "string", source="deviceType"),
    ),
    key=("lead_id",),
    expectations=(
        Expect("ExpectColumnValuesToBeInSet", column="status", value_set=LEAD_STATUSES),
        _in_the_day("created_at"),
        *_ids(
            "lead_id",
            "client_id",
            "location_id",
            "offer_id",
            "offer_category_id",
            "sku_id",
            "channel_id",
            "consultant_id",
            "offline_campaign_id",
        ),
        *_non_negative("offer_price", "sku_price"),
        ROW_COUNT,
    ),
    # Names and birthdays are personal data the contract drops; timestamp is Footprints' bookkeeping.
    ignore_fields=("userFirstName", "userLastName", "userBirthday", "timestamp", "__v"),
    extract=extract_leads,
    row_group_rows=16_384,  # a busy day's row groups stay small: memory follows the page, not the day
    lookback_days=7,  # a lead's status keeps changing after its day (a lead becomes a customer a week later)
)


# -- status history -----------------------------------------------------------------------

STATUS_CHANGES_KEY = ("lead_id", "status", "status_changed_at")


def _published_rows(dataset: str, dt: Any, columns: list[str], account: str) -> list[dict[str, Any]]:
    """The rows of an account's published partition (only ``columns``); none when nothing is published."""
    import pyarrow.parquet as pq

    from vendorflow import settings
    from vendorflow.pipeline.storage import Lake

    lake = Lake(settings.data_root())
    path = lake.data_file(dataset, dt, account)
    try:
        with lake.fs.open(path, "rb") as handle:
            return pq.read_table(handle, columns=columns).to_pylist()
    except FileNotFoundError:
        return []


def extract_lead_status_changes(ctx: ExtractContext) -> Iterator[Records]:
    """What the partition held, plus every (lead, status, change time) the ``footprints/leads`` partition
    of the same day holds now that it did not: an observation is never forgotten, and keeps when it was
    first seen (the ``_extracted_at`` of the leads extraction that saw it)."""
    seen: dict[tuple[Any, ...], dict[str, Any]] = {}
    own = ["lead_id", "status", "status_changed_at", "lead_created_at", "first_seen_at"]
    for row in _published_rows("footprints/lead_status_changes", ctx.dt, own, ctx.account):
        seen[tuple(row[k] for k in STATUS_CHANGES_KEY)] = row
    known = len(seen)
    leads = _published_rows(
        "footprints/leads",
        ctx.dt,
        ["lead_id", "status", "status_changed_at", "created_at", "_extracted_at"],
        ctx.account,
    )
    for lead in leads:
        key = tuple(lead[k] for k in STATUS_CHANGES_KEY)
        if key not in seen:
            seen[key] = {
                "lead_id": lead["lead_id"],
                "status": lead["status"],
                "status_changed_at": lead["status_changed_at"],
                "lead_created_at": lead["created_at"],
                "first_seen_at": lead["_extracted_at"],
            }
    ctx.log.info(
        "footprints/lead_status_changes dt=%s account=%s: %d observations kept, %d new from %d leads",
        ctx.dt, ctx.account, known, len(seen) - known, len(leads),
    )  # fmt: skip
    rows = sorted(seen.values(), key=lambda r: (r["lead_id"], r["first_seen_at"], r["status"]))
    yield from pages_of(rows, f"footprints/leads dt={ctx.dt}")


LEAD_STATUS_CHANGES = DatasetSpec(
    vendor="footprints",
    name="lead_status_changes",
    notes=(
        "one row per (`lead_id`, `status`, `status_changed_at`) ever seen in `footprints/leads` of `dt` (the "
        "lead's creation day), with `first_seen_at`; a lead that changed status has a row per status. Built from "
        "the published leads after each run, so it is as fresh as the leads' lookback"
    ),
    description=(
        "Status history of the leads created on dt: every (lead, status, status change time) observed, "
        "and when it was first seen."
    ),
    columns=(
        Column("lead_id", "string", required=True, nullable=False),
        Column("status", "string", required=True, nullable=False),
        Column("status_changed_at", "timestamp", required=True),
        Column("lead_created_at", "timestamp", required=True, nullable=False),
        Column("first_seen_at", "timestamp", required=True, nullable=False),
    ),
    key=STATUS_CHANGES_KEY,
    expectations=(
        Expect("ExpectColumnValuesToBeInSet", column="status", value_set=LEAD_STATUSES),
        *_ids("lead_id"),
        _in_the_day("lead_created_at"),
    ),
    extract=extract_lead_status_changes,
    lookback_days=7,  # follows footprints/leads: the days whose leads may have changed
)


# -- reference snapshots ----------------------------------------------------------------


def list_extractor(path: str) -> Callable[[ExtractContext], Iterator[Records]]:
    """Every page of a reference list; its ``X-Records`` becomes ``vendor_records``."""

    def extract(ctx: ExtractContext) -> Iterator[Records]:
        received = 0
        announced: int | None = None
        for page in _hook(ctx).list_pages(path):
            received += len(page)
            announced = page.total_records if page.total_records is not None else announced
            yield page
        ctx.facts["vendor_records"] = announced if announced is not None else received

    extract.__name__ = f"extract_{path.rsplit('/', 1)[-1]}"
    return extract


# Bookkeeping every Footprints document carries (Mongo's version key, the vendor's own timestamp) and
# images, which no analysis uses: dropped on purpose, not schema drift.
_BOOKKEEPING = ("__v", "timestamp", "image")


def _snapshot(
    name: str,
    path: str,
    description: str,
    columns: tuple[Column, ...],
    *expectations: Expect,
    ignore: tuple[str, ...] = (),
    notes: str = "",
) -> DatasetSpec:
    return DatasetSpec(
        vendor="footprints",
        name=name,
        description=description,
        notes=notes,
        snapshot=True,
        columns=columns,
        key=(columns[0].name,),
        expectations=(*_ids(columns[0].name), *expectations, ROW_COUNT),
        extract=list_extractor(path),
        ignore_fields=(*_BOOKKEEPING, *ignore),
    )


OFFERS = _snapshot(
    "offers",
    "/api/offer",
    "Every offer as listed that day (GET /api/offer).",
    (
        Column("offer_id", "string", source="_id", required=True, nullable=False),
        Column("name", "string"),
        Column("price", "decimal"),
        Column("external_id", "string", source="externalId"),
        Column("offer_category_id", "string", source="offerCategory._id"),
        Column("offer_category_name", "string", source="offerCategory.name"),
    ),
    *_non_negative("price"),
    *_ids("offer_category_id"),
    notes=("snapshot"),
)

SKUS = _snapshot(
    "skus",
    "/api/sku",
    "Every SKU as listed that day (GET /api/sku).",
    (
        Column("sku_id", "string", source="_id", required=True, nullable=False),
        Column("name", "string"),
        Column("price", "decimal"),
        Column("external_id", "string", source="externalId"),
        Column("quantity", "int64"),
        Column("offer_id", "string", source="offer._id"),
        Column("offer_name", "string", source="offer.name"),
    ),
    *_non_negative("price", "quantity"),
    *_ids("offer_id"),
    notes=("snapshot"),
)

CATALOGUES = _snapshot(
    "catalogues",
    "/api/offerCategory",
    "Every catalogue (offer category) as listed that day (GET /api/offerCategory).",
    (
        Column("catalogue_id", "string", source="_id", required=True, nullable=False),
        Column("name", "string"),
    ),
    notes=("snapshot of `/api/offerCategory`"),
)

LOCATIONS = _snapshot(
    "locations",
    "/api/location",
    "Every business location as listed that day (GET /api/location).",
    (
        Column("location_id", "string", source="_id", required=True, nullable=False),
        Column("name", "string"),
        Column("description", "string"),
        Column("address", "string", description="the store's address (a business, not a person)"),
        Column("area_id", "string", source="areaId"),
        Column("coords", "json"),
        Column("created_at", "timestamp", source="createdAt"),
    ),
    *_ids("area_id"),
    notes=("snapshot; `coords` as JSON text, `address` is the store's"),
)

CHANNELS = _snapshot(
    "channels",
    "/api/channels",
    "Every lead channel as listed that day (GET /api/channels).",
    (
        Column("channel_id", "string", source="_id", required=True, nullable=False),
        Column("name", "string"),
        Column("media_type", "string", source="mediaType"),
    ),
    notes=("snapshot"),
)

OFFLINE_CAMPAIGNS = _snapshot(
    "offline_campaigns",
    "/api/offlineCampaign",
    "Every offline campaign as listed that day (GET /api/offlineCampaign).",
    (
        Column("offline_campaign_id", "string", source="_id", required=True, nullable=False),
        Column("location_id", "string", source="locationId"),
        Column("name", "string"),
        Column("description", "string"),
        Column("type", "string"),
        Column("budget", "decimal"),
        Column("start_date", "timestamp", source="startDate"),
        Column("end_date", "timestamp", source="endDate"),
        Column("created_at", "timestamp", source="createdAt"),
    ),
    *_ids("location_id"),
    *_non_negative("budget"),
    ignore=("drawFrequency", "winningType"),
    notes=("snapshot"),
)


# -- loyalty ----------------------------------------------------------------------------


def extract_loyalty_campaigns(ctx: ExtractContext) -> Iterator[Records]:
    """Every campaign (``/campaigns``), marked active when ``/active-campaigns`` lists it."""
    hook = _hook(ctx)
    campaigns = hook.loyalty_campaigns()
    active = {c.get("internalId") for c in hook.active_loyalty_campaigns()}
    ctx.facts["vendor_records"] = len(campaigns)
    yield Records(({**c, "_active": c.get("internalId") in active} for c in campaigns), campaigns.source)


def extract_loyalty_codes(ctx: ExtractContext) -> Iterator[Records]:
    """Every allocated, redeemed or blocked code of every campaign, paged to ``totalResults``."""
    received = 0
    announced: int | None = None
    for page in _hook(ctx).loyalty_code_pages():
        received += len(page)
        announced = page.total_records if page.total_records is not None else announced
        yield page
    ctx.facts["vendor_records"] = announced if announced is not None else received


LOYALTY_CAMPAIGNS = DatasetSpec(
    vendor="footprints",
    name="loyalty_campaigns",
    notes=("snapshot of `/api/loyaltyCode/campaigns`; `active` = listed by `/active-campaigns`"),
    description=(
        "Every loyalty campaign as listed that day (GET /api/loyaltyCode/campaigns), active per /active-campaigns."
    ),
    snapshot=True,
    columns=(
        Column("campaign_id", "string", source="_id", required=True, nullable=False),
        Column("internal_id", "string", source="internalId", required=True, nullable=False),
        Column("name", "string"),
        Column("type", "string"),
        Column("start_date", "timestamp", source="startDate"),
        Column("end_date", "timestamp", source="endDate"),
        Column("expire_codes_date", "timestamp", source="expireCodesDate"),
        Column("location_id", "string", source="locationId"),
        Column("active", "bool", source="_active"),
        Column("loyalty_type", "string", source="loyaltySettings.type"),
        Column("budget", "decimal"),
        Column("created_at", "timestamp", source="createdAt"),
    ),
    key=("campaign_id",),
    expectations=(
        *_ids("campaign_id", "location_id"),
        Expect("ExpectColumnValuesToBeUnique", column="internal_id"),
        Expect(
            "ExpectColumnPairValuesAToBeGreaterThanB",
            column_A="end_date",
            column_B="start_date",
            or_equal=True,
            ignore_row_if="either_value_is_missing",
        ),
        *_non_negative("budget"),
        ROW_COUNT,
    ),
    extract=extract_loyalty_campaigns,
    # The campaign's business plan (costs, retention, landing page): not what the codes are analysed by.
    ignore_fields=(
        "__v",
        "timestamp",
        "image",
        "extraAllocations",
        "landingPageURL",
        "leads",
        "monthlySellingCost",
        "monthlyServicingCost",
        "productionCost",
        "profitabilityTime",
        "retentionRate",
        "salesCost",
        "total",
    ),
)

LOYALTY_CODES = DatasetSpec(
    vendor="footprints",
    name="loyalty_codes",
    notes=("snapshot of `POST /api/loyaltyCode/list`, all campaigns; key `(campaign_internal_id, code)`"),
    description="Every allocated, redeemed or blocked loyalty code, all campaigns (POST /api/loyaltyCode/list).",
    snapshot=True,
    columns=(
        Column("code", "string", required=True, nullable=False),
        Column("status", "string", required=True, nullable=False),
        Column("campaign_internal_id", "string", source="campaign.internalId", nullable=False),
        Column("campaign_name", "string", source="campaign.name"),
        Column("client_id", "string", source="client._id"),
        Column("client_email", "string", source="client.userEmail", pii="email"),
        Column("client_phone", "string", source="client.userPhone", pii="phone"),
        Column("prize_name", "string", source="prize.name"),
        Column("prize_points", "int64", source="prize.pointsValue"),
        Column("hostess_id", "string", source="hostess._id"),
    ),
    key=("campaign_internal_id", "code"),
    expectations=(
        Expect("ExpectColumnValuesToBeInSet", column="status", value_set=CODE_STATUSES),
        *_ids("client_id", "hostess_id"),
        *_non_negative("prize_points"),
        ROW_COUNT,
    ),
    extract=extract_loyalty_codes,
)

DATASETS = (
    LEADS,
    LEAD_STATUS_CHANGES,
    OFFERS,
    SKUS,
    CATALOGUES,
    LOCATIONS,
    CHANNELS,
    OFFLINE_CAMPAIGNS,
    LOYALTY_CAMPAIGNS,
    LOYALTY_CODES,
)
REFERENCE = ("offers", "skus", "catalogues", "locations", "channels", "offline_campaigns")
