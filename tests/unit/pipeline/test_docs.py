"""Data Docs work offline: every dataset listed, every link resolves, nothing loads from the internet."""

from __future__ import annotations

import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vendorflow.datasets.spec import Column, DatasetSpec, Expect
from vendorflow.pipeline.validate import validate_parquet


def spec(vendor: str, name: str) -> DatasetSpec:
    return DatasetSpec(
        vendor=vendor,
        name=name,
        description="test",
        key=("id",),
        columns=(Column("id", "int64", nullable=False), Column("views", "int64")),
        expectations=(Expect("ExpectColumnValuesToBeBetween", column="views", min_value=0),),
        extract=lambda ctx: iter(()),
    )


def staged(tmp_path: Path, views: list[int]) -> Path:
    path = tmp_path / f"staged-{len(list(tmp_path.glob('staged-*')))}.parquet"
    pq.write_table(pa.table({"id": list(range(len(views))), "views": views}), path)
    return path


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.links.append(value)


def crawl(site: Path) -> tuple[set[Path], list[str]]:
    """Every page reachable from index.html, and every link that does not resolve to a file of the site."""
    seen: set[Path] = set()
    dead: list[str] = []
    todo = [(site / "index.html").resolve()]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        parser = Links()
        parser.feed(page.read_text())
        for link in parser.links:
            parsed = urlparse(link)
            if parsed.scheme or parsed.netloc or link.startswith("/"):
                dead.append(f"{page.relative_to(site)}: {link} leaves the site")
                continue
            target = (page.parent / unquote(parsed.path)).resolve()
            if not target.is_file() or site.resolve() not in target.parents:
                dead.append(f"{page.relative_to(site)}: {link} does not resolve")
            elif target.suffix == ".html":
                todo.append(target)
    return seen, dead


@pytest.fixture
def gx_root(tmp_path: Path) -> Path:
    root = tmp_path / "_gx"
    day = date(2024, 3, 1).isoformat()
    for vendor, name, views, run in [
        ("alpha", "stats", [1, 2, 3], "run-1"),
        ("alpha", "stats", [1, 2, 3], "run-2"),  # a rerun: both listed
        ("beta", "leads", [1, -5, 3], "run-1"),  # fails
        ("gamma", "big", list(range(50)), "run-1"),  # validated in chunks
    ]:
        validate_parquet(
            spec(vendor, name),
            staged(tmp_path, views),
            facts={"dt": day},
            batch_name=f"dt={day}",
            run_name=run,
            gx_root=root,
            chunk_rows=20,
        )
    return root


def test_every_link_of_every_page_resolves_offline(gx_root: Path) -> None:
    site = gx_root / "data_docs"
    pages, dead = crawl(site)
    assert dead == []
    every_page = {p.resolve() for p in site.rglob("*.html")}
    assert every_page == pages  # none that nothing links to
    for page in every_page:
        text = page.read_text()
        assert not re.search(r"<script|<link|https?://", text), f"{page} loads something from outside"
    # one index, 3 dataset pages, 3 suite pages, 4 validation pages
    assert len(every_page) == 1 + 3 + 3 + 4


def test_the_index_lists_every_dataset_with_its_suite_and_latest_result(gx_root: Path) -> None:
    index = (gx_root / "data_docs" / "index.html").read_text()
    for dataset in ("alpha/stats", "beta/leads", "gamma/big"):
        assert dataset in index
        assert f"suites/{dataset.replace('/', '.')}.html" in index
    assert "failed, batch quarantined" in index and index.count("passed</span>") == 2


def test_a_validation_page_names_its_data_asset_and_what_failed(gx_root: Path) -> None:
    [page] = (gx_root / "data_docs" / "validations" / "beta.leads").rglob("*.html")
    text = page.read_text()
    assert "beta/leads" in text and "Data asset" in text and "None" not in text
    assert "expect_column_values_to_be_between" in text and "1 unexpected" in text and "[-5]" in text
    suite = (gx_root / "data_docs" / "suites" / "beta.leads.html").read_text()
    assert "expect_column_values_to_not_be_null" in suite and "expect_column_values_to_be_unique" in suite
    listing = (gx_root / "data_docs" / "datasets" / "alpha.stats.html").read_text()
    assert "run-1" in listing and "run-2" in listing
