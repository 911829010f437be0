"""The one path from declaration to partition, with a fake hook: publish, quarantine, nothing partial."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pyarrow.parquet as pq
import pytest

from vendorflow.datasets.spec import Column, DatasetSpec, Expect, ExtractContext, Records, param
from vendorflow.errors import ValidationFailed, VendorResponseError
from vendorflow.pipeline.run import run_dataset
from vendorflow.pipeline.storage import Lake

DAY = date(2024, 3, 1)


class FakeHook:
    vendor_name = "Fake"

    def __init__(self, pages: list[list[dict]], fail_after: int | None = None) -> None:
        self.pages = pages
        self.fail_after = fail_after


def extract(ctx: ExtractContext) -> Iterator[Records]:
    ctx.facts["announced"] = sum(len(p) for p in ctx.hook.pages)
    for number, page in enumerate(ctx.hook.pages, start=1):
        if ctx.hook.fail_after is not None and number > ctx.hook.fail_after:
            raise ConnectionError("vendor went away")
        yield Records(page, f"GET /stats?page={number}", number=number)


SPEC = DatasetSpec(
    vendor="fake",
    name="stats",
    description="test dataset",
    columns=(
        Column("id", "int64", required=True, nullable=False),
        Column("day", "date", source="date", required=True),
        Column("views", "int64"),
    ),
    key=("id",),
    expectations=(
        Expect("ExpectColumnValuesToBeBetween", column="views", min_value=0),
        Expect("ExpectColumnValuesToBeBetween", column="day", min_value=param("dt"), max_value=param("dt")),
        Expect("ExpectTableRowCountToEqual", value=param("announced")),
    ),
    extract=extract,
)


def rows(start: int, n: int, views: int = 5, day: str = "2024-03-01") -> list[dict]:
    return [{"id": i, "date": day, "views": views} for i in range(start, start + n)]


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(str(tmp_path / "lake"))


def run(lake: Lake, hook: FakeHook, run_id: str = "r1"):  # type: ignore[no-untyped-def]
    return run_dataset(SPEC, hook=hook, dt=DAY, run_id=run_id, lake=lake)


def test_pages_are_published_as_one_validated_partition(lake: Lake) -> None:
    result = run(lake, FakeHook([rows(0, 3), rows(3, 2), []]))
    assert result.rows == 5 and result.validation == "7/7 expectations passed"  # 6 declared, 1 shrink guard
    table = pq.read_table(result.path)
    assert table.column("id").to_pylist() == [0, 1, 2, 3, 4]
    assert table.schema.names == ["id", "day", "views", "account", "_extracted_at"]
    manifest = lake.read_manifest("fake/stats", DAY)
    assert manifest and manifest["rows"] == 5 and manifest["parameters"]["announced"] == 5
    assert result.docs_url and Path(url2pathname(urlparse(result.docs_url).path)).exists()  # its Data Docs page
    assert not list(Path(lake.base, "_staging").rglob("*.parquet"))


def test_a_rerun_replaces_the_partition(lake: Lake) -> None:
    run(lake, FakeHook([rows(0, 5)]))
    result = run(lake, FakeHook([rows(0, 3)]), run_id="r2")
    assert pq.read_table(result.path).num_rows == 3
    assert len(list(Path(lake.partition_path("fake/stats", DAY)).glob("*.parquet"))) == 1


@pytest.mark.parametrize(
    ("pages", "failure"),
    [
        (
            [rows(0, 3), rows(2, 2)],
            "expect_column_values_to_be_unique(column='id'): 2 unexpected values",
        ),  # duplicate across pages
        ([rows(0, 2, views=-1)], "expect_column_values_to_be_between(column='views', min_value=0"),
        ([rows(0, 2, day="2024-02-29")], "column='day'"),
    ],
)
def test_a_failing_batch_is_quarantined_and_the_partition_untouched(lake: Lake, pages: list, failure: str) -> None:
    good = run(lake, FakeHook([rows(0, 4)]))
    with pytest.raises(ValidationFailed) as error:
        run(lake, FakeHook(pages), run_id="bad")
    message = str(error.value)
    assert failure in message and "quarantined at" in message and "published partition is unchanged" in message
    assert pq.read_table(good.path).num_rows == 4
    quarantined = list(Path(lake.base, "_quarantine", "fake", "stats", "dt=2024-03-01").glob("*/validation.json"))
    assert len(quarantined) == 1
    assert (quarantined[0].parent / "data.parquet").exists()


def test_an_extraction_that_fails_midway_publishes_nothing(lake: Lake) -> None:
    with pytest.raises(ConnectionError):
        run(lake, FakeHook([rows(0, 2), rows(2, 2), rows(4, 2)], fail_after=2))
    assert lake.partitions("fake/stats") == []
    assert not list(Path(lake.base).rglob("*.parquet"))


def test_a_record_that_breaks_the_schema_names_vendor_endpoint_and_field(lake: Lake) -> None:
    bad = rows(0, 2) + [{"id": 2, "date": "2024-03-01", "views": "many"}]
    with pytest.raises(VendorResponseError) as error:
        run(lake, FakeHook([rows(10, 1), bad]))
    assert str(error.value) == "Fake GET /stats?page=2: record 2: field 'views' = 'many' is not an integer"
    assert lake.partitions("fake/stats") == []
