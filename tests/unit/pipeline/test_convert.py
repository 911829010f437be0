"""Records to Arrow: documented variants convert, anything else is named precisely."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pyarrow as pa
import pytest

from vendorflow.datasets.spec import Column, DatasetSpec
from vendorflow.pii import pseudonymise
from vendorflow.pipeline.convert import (
    BatchBuilder,
    RecordError,
    get_path,
    timestamp_converter,
    to_bool,
    to_date,
    to_decimal,
    to_int,
)
from vendorflow.pipeline.schema import arrow_schema

NOW = datetime(2024, 3, 2, 1, 2, 3, tzinfo=timezone.utc)


def spec(*columns: Column) -> DatasetSpec:
    return DatasetSpec(vendor="v", name="d", description="", columns=columns, extract=lambda ctx: iter(()))


def build(columns: tuple[Column, ...], records: list[dict], **kwargs) -> pa.RecordBatch:  # type: ignore[no-untyped-def]
    s = spec(*columns)
    mode = kwargs.get("pii_mode", "hmac")
    return BatchBuilder(s, arrow_schema(s, mode), pii_mode=mode, pii_key=kwargs.get("pii_key", b"k")).build(
        records, NOW
    )


@pytest.mark.parametrize(("value", "expected"), [(5, 5), ("42", 42), (" -7 ", -7), (3.0, 3)])
def test_integers(value: object, expected: int) -> None:
    assert to_int(value) == expected


@pytest.mark.parametrize("value", [3.5, "3.5", "n/a", True, [1]])
def test_not_integers(value: object) -> None:
    with pytest.raises(ValueError):
        to_int(value)


def test_money_strings_and_numbers_become_four_place_decimals() -> None:
    assert to_decimal("25.0000") == Decimal("25.0000")
    assert to_decimal(12.5) == Decimal("12.5000")
    assert to_decimal("1.23456") == Decimal("1.2346")
    for bad in ("abc", "NaN", "1e20", True):
        with pytest.raises(ValueError):
            to_decimal(bad)


def test_flags_dates_and_instants() -> None:
    assert to_bool(1) is True and to_bool("0") is False and to_bool("true") is True
    with pytest.raises(ValueError):
        to_bool(2)
    assert to_date("2024-03-01") == date(2024, 3, 1)
    assert to_date("2024-03-01T23:00:00+03:00") == date(2024, 3, 1)
    utc = timestamp_converter("UTC")
    assert utc("2018-09-24T19:00:00.000Z") == datetime(2018, 9, 24, 19, tzinfo=timezone.utc)
    assert utc("2018-09-24T19:00:00+0200") == datetime(2018, 9, 24, 17, tzinfo=timezone.utc)
    assert utc("2020-03-15 16:12:56") == datetime(2020, 3, 15, 16, 12, 56, tzinfo=timezone.utc)
    bucharest = timestamp_converter("Europe/Bucharest")
    assert bucharest("2020-03-15 16:12:56") == datetime(2020, 3, 15, 14, 12, 56, tzinfo=timezone.utc)
    with pytest.raises(ValueError):
        utc("yesterday")


def test_nested_paths() -> None:
    record = {"offer": {"name": "Phone", "price": None}, "sku": None}
    assert get_path(record, "offer.name") == "Phone"
    assert get_path(record, "sku.id") is None  # a null parent is a null value
    assert get_path(record, "missing.id") is not None  # a missing parent is missing


def test_a_batch_has_the_declared_schema_and_extracted_at() -> None:
    columns = (
        Column("id", "int64", required=True),
        Column("money", "decimal"),
        Column("active", "bool"),
        Column("is_retarget", "bool", source="isRetarget"),
        Column("offer_name", "string", source="offer.name"),
        Column("tags", "json"),
    )
    batch = build(
        columns,
        [
            {"id": 1, "money": "1.5000", "active": 1, "isRetarget": 0, "offer": {"name": "A"}, "tags": ["x", "y"]},
            {"id": "2", "money": None, "active": True, "isRetarget": "1", "offer": None},
        ],
    )
    assert batch.schema.names == [
        "id",
        "money",
        "active",
        "is_retarget",
        "offer_name",
        "tags",
        "account",
        "_extracted_at",
    ]
    assert batch.column("id").to_pylist() == [1, 2]
    assert batch.column("money").to_pylist() == [Decimal("1.5000"), None]
    assert batch.column("is_retarget").to_pylist() == [False, True]
    assert batch.column("offer_name").to_pylist() == ["A", None]
    assert batch.column("tags").to_pylist() == ['["x", "y"]', None]
    assert batch.column("_extracted_at").to_pylist() == [NOW, NOW]


def test_floats_are_never_truncated_into_integer_columns() -> None:
    with pytest.raises(RecordError, match=r"record 1: field 'views' = 3.5 is not an integer"):
        build((Column("views", "int64"),), [{"views": 1}, {"views": 3.5}])


def test_a_missing_required_key_is_named() -> None:
    with pytest.raises(RecordError, match=r"record 0: field 'campaignId' = '<missing>' is missing"):
        build((Column("campaign_id", "int64", source="campaignId", required=True),), [{"views": 1}])


def test_personal_data_is_pseudonymised_by_default_and_plain_on_request() -> None:
    columns = (Column("email", "string", source="userEmail", pii="email"), Column("phone", "string", pii="phone"))
    records = [{"userEmail": " Ana@Example.COM ", "phone": "+40 (700) 000-001"}, {"userEmail": None}]
    hashed = build(columns, records, pii_key=b"secret")
    assert hashed.schema.names[:2] == ["email_hmac", "phone_hmac"]
    assert hashed.column("email_hmac").to_pylist() == [pseudonymise("ana@example.com", "email", b"secret"), None]
    assert hashed.column("phone_hmac").to_pylist()[0] == pseudonymise("40700000001", "phone", b"secret")
    assert "Ana" not in str(hashed.to_pylist())
    plain = build(columns, records, pii_mode="plain")
    assert plain.schema.names[:2] == ["email", "phone"]
    assert plain.column("email").to_pylist()[0] == " Ana@Example.COM "


def test_pseudonymising_without_a_key_is_refused() -> None:
    s = spec(Column("email", "string", pii="email"))
    with pytest.raises(ValueError, match="key is required"):
        BatchBuilder(s, arrow_schema(s), pii_mode="hmac", pii_key=None)
