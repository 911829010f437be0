"""Paginators stop only on the vendor's signal; the fan-out keeps order and bounds."""

from __future__ import annotations

import threading
import time

import pytest
import requests
import responses

from vendorflow.errors import VendorResponseError
from vendorflow.http.client import VendorClient
from vendorflow.http.concurrency import bounded_map
from vendorflow.http.paginate import PageNumberPaginator, iterate_pages, records_at
from vendorflow.http.retry import RetryPolicy

BASE = "https://api.example"


def _client() -> VendorClient:
    return VendorClient(vendor="Acme", base_url=BASE, retry=RetryPolicy(attempts=2, sleep=lambda s: None))


@responses.activate
def test_short_pages_do_not_end_an_empty_page_stopped_listing() -> None:
    # The vendor caps pages at 2 although 5 were asked: only the empty page ends it.
    for page, rows in ((1, [{"i": 1}, {"i": 2}]), (2, [{"i": 3}, {"i": 4}]), (3, [{"i": 5}]), (4, [])):
        responses.get(f"{BASE}/lead", json=rows, match=[responses.matchers.query_param_matcher({"page": str(page), "pageSize": "5"}, strict_match=False)])
    pages = list(iterate_pages(_client(), "/lead", paginator=PageNumberPaginator(size_param="pageSize", size=5)))
    assert [len(p) for p in pages] == [2, 2, 1]  # the empty page 4 ends it and is not a page of data
    assert [p.number for p in pages] == [1, 2, 3]
    assert "page=2" in pages[1].source


@responses.activate
def test_total_pages_header_ends_the_listing() -> None:
    for page in (1, 2):
        responses.get(f"{BASE}/offer", json=[{"p": page}], headers={"X-Total-Pages": "2"},
                      match=[responses.matchers.query_param_matcher({"page": str(page)})])
    pages = list(iterate_pages(_client(), "/offer", paginator=PageNumberPaginator(total_pages_header="X-Total-Pages")))
    assert len(pages) == 2 and pages[0].total_pages == 2


@responses.activate
def test_total_results_ends_the_listing_and_an_empty_page_before_it_is_an_error() -> None:
    responses.get(f"{BASE}/codes", json={"totalResults": 3, "results": [{"c": 1}, {"c": 2}]},
                  match=[responses.matchers.query_param_matcher({"page": "1"})])
    responses.get(f"{BASE}/codes", json={"totalResults": 3, "results": []},
                  match=[responses.matchers.query_param_matcher({"page": "2"})])
    paginator = PageNumberPaginator(total_records_key="totalResults")
    with pytest.raises(VendorResponseError, match="page 2 is empty although the vendor announced 3 records"):
        list(iterate_pages(_client(), "/codes", paginator=paginator, records_key="results"))


def test_records_at_checks_the_shape() -> None:
    assert records_at([{"a": 1}], vendor="V", endpoint="GET /x") == [{"a": 1}]
    with pytest.raises(VendorResponseError, match="expected a JSON array of records, got dict"):
        records_at({"a": 1}, vendor="V", endpoint="GET /x")
    with pytest.raises(VendorResponseError, match="record 1 is a int, not an object"):
        records_at([{"a": 1}, 2], vendor="V", endpoint="GET /x")
    with pytest.raises(VendorResponseError, match="with a 'results' list"):
        records_at({"other": []}, "results", vendor="V", endpoint="GET /x")


def test_bounded_map_keeps_order_and_bounds_in_flight() -> None:
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def work(i: int) -> int:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.002 * (i % 3))
        with lock:
            in_flight -= 1
        return i * i

    assert list(bounded_map(work, range(50), 4)) == [i * i for i in range(50)]
    assert peak <= 4


def test_bounded_map_raises_the_first_error() -> None:
    def work(i: int) -> int:
        if i == 7:
            raise ValueError("boom")
        return i

    with pytest.raises(ValueError, match="boom"):
        list(bounded_map(work, range(20), 3))
