"""PII, progress lines, declarations and the registries."""

from __future__ import annotations

import logging

import pytest

from vendorflow import datasets
from vendorflow.assets import asset
from vendorflow.datasets.spec import Column, DatasetSpec, Records, pages_of
from vendorflow.pii import normalise, pseudonymise
from vendorflow.progress import Progress


def test_pii_normalisation_and_hmac() -> None:
    assert normalise("  Ana@Example.com ", "email") == "ana@example.com"
    assert normalise("+40 (700) 000-001", "phone") == "40700000001"
    assert normalise("---", "phone") is None
    a = pseudonymise("ANA@example.com", "email", b"k1")
    assert a == pseudonymise(" ana@example.com", "email", b"k1") and len(a) == 64
    assert a != pseudonymise("ana@example.com", "email", b"k2")
    assert pseudonymise(None, "email", b"k") is None


def test_progress_reports_rate_and_time_left(caplog: pytest.LogCaptureFixture) -> None:
    clock = iter([0.0, 1.0, 2.0])  # started, the advance, the line's own reading
    progress = Progress("v/d", unit="campaigns", total=10, every=0.5, clock=lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="vendorflow.progress"):
        progress.advance(2, rows=20)  # t=1: logs
    assert "v/d: 2/10 campaigns, 20 rows, 1.00 campaigns/s, 10 rows/s, ~8 s left" in caplog.text


def test_declarations_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown type"):
        Column("x", "integer")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be strings"):
        Column("x", "int64", pii="phone")
    with pytest.raises(ValueError, match="key columns"):
        DatasetSpec(
            vendor="v",
            name="d",
            description="",
            columns=(Column("a", "int64"),),
            key=("b",),
            extract=lambda c: iter(()),
        )


def test_records_and_pages_of() -> None:
    pages = list(pages_of(({"i": i} for i in range(5)), "GET /x", size=2))
    assert [len(p) for p in pages] == [2, 2, 1] and all(p.source == "GET /x" for p in pages)
    assert Records([{"a": 1}], "s").records == [{"a": 1}]


def test_registry_and_assets() -> None:
    assert datasets.get("recreativ/offer_statistics").vendor == "recreativ"
    with pytest.raises(KeyError, match="unknown dataset 'recreativ/nope'"):
        datasets.get("recreativ/nope")
    with pytest.raises(KeyError, match="no datasets are declared for vendor 'acme'"):
        datasets.for_vendor("acme")
    assert asset("recreativ/campaigns").uri == "x-vendorflow://recreativ/campaigns"
    assert asset("recreativ/campaigns").name == "recreativ/campaigns"


def test_counts_read_in_the_singular_and_the_plural() -> None:
    from vendorflow.progress import counted, noun

    assert [counted(1, "rows"), counted(0, "rows"), counted(1200, "requests")] == ["1 row", "0 rows", "1,200 requests"]
    assert [noun(1, "pages"), noun(2, "pages"), noun(1, "opt-outs"), noun(1, "data")] == [
        "page",
        "pages",
        "opt-out",
        "data",
    ]
