"""A tiny declared dataset and a fake hook, for probing the publish path without a vendor."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from vendorflow.datasets.spec import Column, DatasetSpec, Expect, ExtractContext, Records, param

DAY = date(2024, 3, 1)


class FakeHook:
    vendor_name = "Fake"

    def __init__(self, pages: list[list[dict]]) -> None:
        self.pages = pages


def rows(start: int, n: int, views: int = 5) -> list[dict]:
    return [{"id": i, "date": DAY.isoformat(), "views": views, "label": f"row {i}"} for i in range(start, start + n)]


def extract(ctx: ExtractContext) -> Iterator[Records]:
    for number, page in enumerate(ctx.hook.pages, start=1):
        yield Records(page, f"GET /stats?page={number}", number=number)


SPEC = DatasetSpec(
    vendor="fake",
    name="stats",
    description="probe dataset",
    columns=(
        Column("id", "int64", required=True, nullable=False),
        Column("day", "date", source="date", required=True),
        Column("views", "int64"),
        Column("label", "string"),
    ),
    key=("id",),
    expectations=(Expect("ExpectColumnValuesToBeBetween", column="day", min_value=param("dt"), max_value=param("dt")),),
    extract=extract,
)
