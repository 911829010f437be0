"""Paginators stop only on the vendor's signal; the fan-out keeps order and bounds."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import responses

from vendorflow.errors import VendorResponseError
from vendorflow.http.client import VendorClient
from vendorflow.http.concurrency import bounded_map
from vendorflow.http.paginate import Page, PageNumberPaginator, iterate_pages, records_at, walk_pages
from vendorflow.http.records import Records
from vendorflow.http.retry import RetryPolicy

BASE = "https://api.example"


def _client() -> VendorClient:
    return VendorClient(vendor="Acme", base_url=BASE, retry=RetryPolicy(attempts=2, sleep=lambda s: None))


@responses.activate
def test_short_pages_do_not_end_an_empty_page_stopped_listing() -> None:
    # The vendor caps pages at 2 although 5 were asked: only the empty page ends it.
    for page, rows in ((1, [{"i": 1}, {"i": 2}]), (2, [{"i": 3}, {"i": 4}]), (3, [{"i": 5}]), (4, [])):
        responses.get(
            f"{BASE}/lead",
            json=rows,
            match=[responses.matchers.query_param_matcher({"page": str(page), "pageSize": "5"}, strict_match=False)],
        )
    pages = list(iterate_pages(_client(), "/lead", paginator=PageNumberPaginator(size_param="pageSize", size=5)))
    assert [len(p) for p in pages] == [2, 2, 1]  # the empty page 4 ends it and is not a page of data
    assert [p.number for p in pages] == [1, 2, 3]
    assert "page=2" in pages[1].source


@responses.activate
def test_total_pages_header_ends_the_listing() -> None:
    for page in (1, 2):
        responses.get(
            f"{BASE}/offer",
            json=[{"p": page}],
            headers={"X-Total-Pages": "2"},
            match=[responses.matchers.query_param_matcher({"page": str(page)})],
        )
    pages = list(iterate_pages(_client(), "/offer", paginator=PageNumberPaginator(total_pages_header="X-Total-Pages")))
    assert len(pages) == 2 and pages[0].total_pages == 2


@responses.activate
def test_total_results_ends_the_listing_and_an_empty_page_before_it_is_an_error() -> None:
    responses.get(
        f"{BASE}/codes",
        json={"totalResults": 3, "results": [{"c": 1}, {"c": 2}]},
        match=[responses.matchers.query_param_matcher({"page": "1"})],
    )
    responses.get(
        f"{BASE}/codes",
        json={"totalResults": 3, "results": []},
        match=[responses.matchers.query_param_matcher({"page": "2"})],
    )
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


# --- page-numbered listings fetched ahead, through walk_pages --------------------------------


class _Headers:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


def numbered_pages(fetch: Any, *, stop: int | None, concurrency: int) -> Any:
    """Pages 1, 2, ... through the one paging loop, with ``stop`` announced as the page count."""

    def page(query: dict[str, Any]) -> Page:
        records = fetch(query["page"])
        headers = {"X-Total-Pages": str(stop)} if stop is not None else {}
        return Page(list(records), records, _Headers(headers), records.source)  # type: ignore[arg-type]

    paginator = PageNumberPaginator(total_pages_header="X-Total-Pages")
    return walk_pages(page, paginator, vendor="Footprints", concurrency=concurrency)


def test_numbered_pages_stop_at_the_first_empty_page_and_keep_order() -> None:
    fetched: list[int] = []
    lock = threading.Lock()

    def fetch(n: int) -> Records:
        time.sleep(0.01 * (n % 3))  # answers arrive out of order
        with lock:
            fetched.append(n)
        return Records([{"n": n}] * (2 if n < 10 else 0), f"page {n}", number=n)

    pages = list(numbered_pages(fetch, stop=None, concurrency=4))
    assert [p.number for p in pages] == list(range(1, 10))  # the empty page 10 ends it
    assert max(fetched) <= 10 + 3  # at most a window past the first empty page
    fetched.clear()
    assert [p.number for p in numbered_pages(fetch, stop=5, concurrency=3)] == [1, 2, 3, 4, 5]
    assert sorted(fetched) == [1, 2, 3, 4, 5]


def test_numbered_pages_hold_at_most_a_window_in_memory() -> None:
    in_flight = 0
    most = 0
    lock = threading.Lock()

    def fetch(n: int) -> Records:
        nonlocal in_flight, most
        with lock:
            in_flight += 1
            most = max(most, in_flight)
        time.sleep(0.005)
        with lock:
            in_flight -= 1
        return Records([{"n": n}], "x", number=n)

    consumed = 0
    for _ in numbered_pages(fetch, stop=60, concurrency=5):
        consumed += 1
        time.sleep(0.002)  # a slow consumer (the Parquet writer) does not let pages pile up
    assert consumed == 60 and most <= 5


# --- a listing whose size is expected (what the day held last time) ------------------------------


def sized_pages(records: int, *, size: int, expected: int | None, concurrency: int, announce: bool = False) -> Any:
    """A listing of ``records`` records in pages of ``size`` (a ``pageSize`` cap), walked with ``expected``;
    returns the pages yielded and, per round, the pages asked before any of that round answered."""
    asked: list[int] = []
    lock = threading.Lock()
    pages = -(-records // size)

    def fetch(query: dict[str, Any]) -> Page:
        n = int(query["page"])
        with lock:
            asked.append(n)
        time.sleep(0.002)
        held = max(0, min(size, records - (n - 1) * size))
        headers = {"X-Total-Pages": str(pages)} if announce else {}
        return Page([{"n": n}] * held, None, _Headers(headers), f"page {n}")  # type: ignore[arg-type]

    paginator = PageNumberPaginator(size_param="pageSize", size=size, total_pages_header="X-Total-Pages")
    got = list(walk_pages(fetch, paginator, vendor="Footprints", concurrency=concurrency, expected_records=expected))
    return got, asked


def test_how_many_pages_are_asked_with_the_first() -> None:
    from vendorflow.http.paginate import pages_to_ask_first

    paginator = PageNumberPaginator(size_param="pageSize", size=250)
    assert pages_to_ask_first(paginator, None, 8) == 1
    assert pages_to_ask_first(paginator, 0, 8) == 1  # an empty day last time: the first page alone
    assert pages_to_ask_first(paginator, 1117, 8) == 6  # 5 pages and the empty one that ends them
    assert pages_to_ask_first(paginator, 1117, 4) == 4  # never more than in flight
    assert pages_to_ask_first(paginator, 250, 8) == 2
    assert pages_to_ask_first(PageNumberPaginator(), 1117, 8) == 1  # no page size: no way to tell


def test_a_day_like_the_last_costs_its_pages_and_one_empty_one() -> None:
    got, asked = sized_pages(1117, size=250, expected=1117, concurrency=8)
    assert [len(p) for p in got] == [250, 250, 250, 250, 117]
    assert sorted(asked) == [1, 2, 3, 4, 5, 6]
    # without the hint the same day asks more past its end
    got_blind, asked_blind = sized_pages(1117, size=250, expected=None, concurrency=8)
    assert [len(p) for p in got_blind] == [len(p) for p in got] and len(asked_blind) > len(asked)


def test_a_wrong_guess_costs_requests_never_records() -> None:
    bigger, asked = sized_pages(3000, size=250, expected=1117, concurrency=8)
    assert sum(len(p) for p in bigger) == 3000 and [p.number for p in bigger] == list(range(1, 13))
    assert max(asked) <= 13 + 7  # to the empty page 13, and at most a window past it
    smaller, asked = sized_pages(300, size=250, expected=1117, concurrency=8)
    assert [len(p) for p in smaller] == [250, 50] and sorted(asked) == [1, 2, 3, 4, 5, 6]
    empty, asked = sized_pages(0, size=250, expected=1117, concurrency=8)
    assert [len(p) for p in empty] == [0]  # an empty listing is one empty page
    announced, asked = sized_pages(1117, size=250, expected=2000, concurrency=8, announce=True)
    # the count the first page announced ends it; pages asked with the first past it are not yielded
    assert [p.number for p in announced] == [1, 2, 3, 4, 5] and set(asked) >= {1, 2, 3, 4, 5}
