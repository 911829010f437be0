"""Footprints leads: mapping a vendor record to a row, and the expectations that catch what goes wrong in
real life (duplicate ids across pages, leads of another day, unknown statuses, malformed ids, negative prices,
a row count that disagrees with the vendor's total). Pure pieces: no sandbox, no Airflow run."""

from __future__ import annotations

import copy
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from vendorflow.datasets.spec import ExtractContext, Records
from vendorflow.pipeline.convert import BatchBuilder
from vendorflow.pipeline.schema import arrow_schema
from vendorflow.pipeline.validate import validate_table
from vendorflow.progress import Progress
from vendorflow.vendors.footprints.datasets import LEADS, extract_leads

DAY = date(2024, 3, 2)
KEY = b"unit-key"


def lead(n: int, **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "_id": f"65e26c255534cc3713{n:06x}",
        "status": "lead",
        "createdAt": f"2024-03-02T{n % 24:02d}:00:37.143Z",
        "updatedAt": "2024-03-06T04:12:37.143Z",
        "timestampStatusChange": "2024-03-02T06:36:37.143Z",
        "clientId": "5b31f280aa519ed89984dfd9",
        "locationId": "5b31f28069f01ab0c9cd8a24",
        "offerId": "5b31f280cea77838e9621dfa",
        "offer": {"_id": "5b31f280cea77838e9621dfa", "name": "Offer 24", "price": 16.47},
        "offerCategoryId": "5b31f28096c5e862e76cea96",
        "offerCategory": "Catalogue 6",
        "sku": {"_id": "5b31f2803b5180d97af2e1b5", "name": "SKU 80", "price": "3598"},
        "skuExternalId": "SK5079",
        "consultant": {"_id": "5b31f280e9b1b2728ba34353", "name": "Andrei Rusu"},
        "userEmail": " Client1@Example.COM ",
        "userPhone": "+40 700 000 123",
        "userFirstName": "Ana",
        "userBirthday": "Fri Oct 21 1960",
        "userIncome": "",
        "agreeTandc": True,
        "isAdult": "true",
        "deviceType": "mobile",
    }
    record.update(changes)
    return record


def build(records: list[dict[str, Any]]) -> pa.Table:
    schema = arrow_schema(LEADS)
    batch = BatchBuilder(LEADS, schema, pii_mode="hmac", pii_key=KEY).build(records, datetime.now(timezone.utc))
    return pa.Table.from_batches([batch])


def test_a_lead_is_flattened_typed_and_pseudonymised() -> None:
    import hashlib
    import hmac

    row = build([lead(1)]).to_pylist()[0]
    assert row["offer_name"] == "Offer 24" and row["offer_price"] == Decimal("16.4700")
    assert row["sku_id"] == "5b31f2803b5180d97af2e1b5" and row["sku_price"] == Decimal("3598.0000")
    assert row["consultant_id"] == "5b31f280e9b1b2728ba34353"
    assert row["created_at"] == datetime(2024, 3, 2, 1, 0, 37, 143000, tzinfo=timezone.utc)
    assert row["user_email_hmac"] == hmac.new(KEY, b"client1@example.com", hashlib.sha256).hexdigest()
    assert row["user_phone_hmac"] == hmac.new(KEY, b"40700000123", hashlib.sha256).hexdigest()
    assert row["user_income"] is None and row["is_adult"] is True
    assert not {"user_email", "user_phone", "user_first_name", "user_birthday", "consultant_name"} & set(row)


def test_update_lead_style_ids_fill_the_nested_columns() -> None:
    record = lead(2)
    del record["sku"], record["consultant"]
    record.update(skuId="5e6b7be8576e5213f065b23c", consultantId="59f8530f0e124a7c9247c0e7")
    ctx = ExtractContext(
        hook=_FakeHook([Records([record], "GET /api/lead?page=1")]), dt=DAY, inputs={}, progress=Progress("t")
    )
    page = next(iter(extract_leads(ctx)))
    row = build(list(page)).to_pylist()[0]
    assert row["sku_id"] == "5e6b7be8576e5213f065b23c" and row["consultant_id"] == "59f8530f0e124a7c9247c0e7"


class _FakeHook:
    def __init__(self, pages: list[Records]) -> None:
        self.pages = pages

    def lead_pages(self, start: date, end: date, expected_records: int | None = None) -> list[Records]:
        assert start == end == DAY
        return self.pages


def validate(table: pa.Table, tmp_path: Path, vendor_records: int | None = None) -> list[str]:
    parameters = {
        "dt": DAY.isoformat(),
        "day_start": "2024-03-02T00:00:00+00:00",
        "day_end": "2024-03-03T00:00:00+00:00",
        "vendor_records": table.num_rows if vendor_records is None else vendor_records,
    }
    outcome = validate_table(
        LEADS, table, facts=parameters, batch_name="unit", run_name="unit", gx_root=tmp_path / "gx"
    )
    return outcome.failures


GOOD = [lead(n) for n in range(1, 6)]
# Each real-life fault, one record each, and the expectation that must catch it.
FAULTS = [
    ("duplicate id across pages", copy.deepcopy(GOOD[0]), "expect_column_values_to_be_unique(column='lead_id')"),
    (
        "a lead of the day before",
        lead(7, createdAt="2024-03-01T23:59:59.999Z"),
        "expect_column_values_to_be_between(column='created_at'",
    ),
    (
        "a lead of the next day",
        lead(8, createdAt="2024-03-03T00:00:00.000Z"),
        "expect_column_values_to_be_between(column='created_at'",
    ),
    ("unknown status", lead(9, status="won"), "expect_column_values_to_be_in_set(column='status'"),
    ("malformed lead id", lead(10, _id="undefined"), "expect_column_values_to_match_regex(column='lead_id'"),
    (
        "malformed offer id",
        lead(11, offerId="5b31f280cea77838e9621dfa "),
        "expect_column_values_to_match_regex(column='offer_id'",
    ),
    (
        "negative price",
        lead(12, offer={"_id": "5b31f280cea77838e9621dfa", "name": "x", "price": -1}),
        "expect_column_values_to_be_between(column='offer_price'",
    ),
]


def test_a_clean_day_passes_every_expectation(tmp_path: Path) -> None:
    assert validate(build(GOOD), tmp_path) == []


def test_each_real_life_fault_fails_its_expectation(tmp_path: Path) -> None:
    records = GOOD + [record for _, record, _ in FAULTS]
    # The vendor announced one record more than it served (a page lost on the way).
    failures = validate(build(records), tmp_path, vendor_records=len(records) + 1)
    expected = {failure for _, _, failure in FAULTS} | {"expect_table_row_count_to_equal("}
    assert len(failures) == len(expected), failures
    for failure in expected:
        assert any(f.startswith(failure) for f in failures), (failure, failures)
    between = next(f for f in failures if f.startswith("expect_column_values_to_be_between(column='created_at'"))
    assert "2 unexpected values" in between  # the day before and the next day, the day's bounds exclusive at midnight


@pytest.mark.parametrize("chunk_rows", [4])
def test_a_big_day_validated_in_chunks_gets_the_same_verdict_as_whole(tmp_path: Path, chunk_rows: int) -> None:
    import pyarrow.parquet as pq

    from vendorflow.pipeline.validate import validate_parquet

    records = GOOD + [record for _, record, _ in FAULTS] + [copy.deepcopy(GOOD[1])]  # a second duplicate pair
    staged = tmp_path / "staged.parquet"
    pq.write_table(build(records), staged, row_group_size=4)
    parameters = {
        "dt": DAY.isoformat(),
        "day_start": "2024-03-02T00:00:00+00:00",
        "day_end": "2024-03-03T00:00:00+00:00",
        "vendor_records": len(records) + 1,
    }
    whole = validate_parquet(
        LEADS, staged, facts=parameters, batch_name="w", run_name="whole", gx_root=tmp_path / "gx", chunk_rows=10_000
    )
    parts = validate_parquet(
        LEADS,
        staged,
        facts=parameters,
        batch_name="c",
        run_name="chunks",
        gx_root=tmp_path / "gx",
        chunk_rows=chunk_rows,
    )
    assert "chunked" not in whole.result and parts.result["chunked"]["parts"][-1]["part"] == -(
        -len(records) // chunk_rows
    )
    assert not whole.success and not parts.success and parts.evaluated == whole.evaluated

    def counts(
        failures: list[str],
    ) -> dict[str, str]:  # expectation -> its count or observed value (samples may differ)
        return {f.split("): ", 1)[0]: f.split("): ", 1)[1].split(", e.g.")[0] for f in failures}

    assert counts(parts.failures) == counts(whole.failures)
    assert counts(parts.failures)["expect_column_values_to_be_unique(column='lead_id'"] == "4 unexpected values"
    clean = tmp_path / "clean.parquet"
    pq.write_table(build(GOOD), clean)
    assert validate_parquet(
        LEADS,
        clean,
        facts={**parameters, "vendor_records": len(GOOD)},
        batch_name="g",
        run_name="good",
        gx_root=tmp_path / "gx",
        chunk_rows=2,
    ).success
