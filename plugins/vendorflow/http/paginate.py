"""The one paging loop, driven by paginators: small state machines that say where the next page is
and when to stop.

Each paginator follows the same three steps as dlt's REST client
(``init_request``, ``update_state``, ``update_request``) and a
``has_next_page`` flag, so :func:`walk_pages` is the only control flow and
every paginator is tested with a fake page.

Pagination stops only on the vendor's own signal (a page-count header, a
total-records field, an empty page): a page shorter than asked proves
nothing, because vendors cap page sizes without saying so. That rule lives in
:meth:`Paginator.end_signal` and nowhere else.

Page-numbered listings may be fetched ``concurrency`` pages at a time
(:attr:`Paginator.prefetch`): the pages are still handed to the paginator and
yielded in order, so the result is the same as one at a time; with an
announced page count exactly those pages are fetched, without one at most
``concurrency - 1`` requests go past the empty page that ends the listing, and
usually one.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests

from vendorflow.errors import VendorResponseError
from vendorflow.http.records import Records

if TYPE_CHECKING:
    from vendorflow.http.client import Params, VendorClient

log = logging.getLogger(__name__)


class PaginationError(Exception):
    """The vendor's pagination signals contradict each other, or are not numbers."""


@dataclass
class Page:
    """One answer of a listing: its records, the decoded body and the response (for headers)."""

    records: list[Mapping[str, Any]]
    body: Any
    response: requests.Response | None
    endpoint: str


Fetch = Callable[[dict[str, Any]], Page]


def count(value: Any, what: str) -> int | None:
    """A vendor's page or record count: ``None`` when absent, else a whole number or a :class:`PaginationError`."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PaginationError(f"{what} is {value!r}, not a number")
    try:
        return int(value)
    except ValueError:
        raise PaginationError(f"{what} is {value!r}, not a number") from None


def _announced(value: Any, what: str, before: int | None) -> int | None:
    counted = count(value, what)
    return before if counted is None else counted


class Paginator:
    """Base: one page and done."""

    has_next_page: bool = True
    total_pages: int | None = None
    total_records: int | None = None
    page_number: int = 1
    size: int | None = None  # the page size asked for, when the paginator asks for one
    prefetch: bool = False  # the next pages' requests do not depend on this page's records
    records_decide: bool = True  # an announced record count may end the listing (not only report it)

    def init_request(self, params: MutableMapping[str, Any]) -> None:
        self.has_next_page = True

    def update_state(self, response: requests.Response | None, body: Any, records: list[Any]) -> None:
        self.has_next_page = False

    def update_request(self, params: MutableMapping[str, Any]) -> None:
        pass

    def ahead(self, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """The requests of the pages after the current one, for fetching ahead (:attr:`prefetch`)."""
        raise NotImplementedError

    def wants(self, asked: Mapping[str, Any]) -> bool:
        """Whether a request from :meth:`ahead` is still within the listing, as far as the vendor announced."""
        return True

    def end_signal(self, records_seen: int, records: list[Any]) -> bool:
        """Whether there is another page, by the vendor's signal alone: the announced page count,
        else the announced record count, else a non-empty page. Never the page's length against
        the size asked for. A signal promising more after an empty page is a contradiction."""
        if self.total_pages is not None:
            more = self.page_number - getattr(self, "start", 1) + 1 < self.total_pages
        elif self.total_records is not None and self.records_decide:
            more = records_seen < self.total_records
        else:
            more = bool(records)
        if more and not records:
            announced = f"{self.total_pages} pages" if self.total_pages is not None else f"{self.total_records} records"
            raise PaginationError(f"page {self.page_number} is empty although the vendor announced {announced}")
        return more


class SinglePage(Paginator):
    """Endpoints that return everything at once."""


@dataclass
class PageNumberPaginator(Paginator):
    """``page=1, 2, ...`` until the vendor's signal says there is no more.

    - ``total_pages_header``: a header with the page count (``X-Total-Pages``);
    - ``total_records_key``: a body field with the record count (``totalResults``);
    - ``total_records_header``: a header with the record count (``X-Records``), kept
      as ``total_records`` for row-count checks; it ends the listing only when no
      page count came and ``records_decide`` (the default) is set;
    - neither: stop at the first empty page, or after the first page when
      ``one_page_without_count`` (a listing that pages only when it says so).

    ``first_page_param=False`` asks for the first page without the page
    parameter (an API whose unpaged answer is its first page).
    """

    page_param: str = "page"
    start: int = 1
    size_param: str | None = None
    size: int | None = None
    total_pages_header: str | None = None
    total_records_key: str | None = None
    total_records_header: str | None = None
    one_page_without_count: bool = False
    first_page_param: bool = True
    records_decide: bool = True
    max_pages: int = 100_000
    records_seen: int = field(default=0, init=False)
    prefetch: bool = field(default=True, init=False)

    def init_request(self, params: MutableMapping[str, Any]) -> None:
        self.has_next_page = True
        self.page_number = self.start
        self.records_seen = 0
        if self.size_param and self.size:
            params[self.size_param] = self.size
        if self.first_page_param:
            params[self.page_param] = self.page_number

    def update_state(self, response: requests.Response | None, body: Any, records: list[Any]) -> None:
        self.records_seen += len(records)
        headers = response.headers if response is not None else {}
        # An announcement stands until the vendor makes another: a later page without the
        # header does not take back the count the first page gave.
        if self.total_pages_header:
            self.total_pages = _announced(
                headers.get(self.total_pages_header), self.total_pages_header, self.total_pages
            )
        if self.total_records_key and isinstance(body, Mapping):
            self.total_records = _announced(
                body.get(self.total_records_key), self.total_records_key, self.total_records
            )
        if self.total_records_header:
            self.total_records = _announced(
                headers.get(self.total_records_header), self.total_records_header, self.total_records
            )
        if self.one_page_without_count and self.total_pages is None:
            self.has_next_page = False
        else:
            self.has_next_page = self.end_signal(self.records_seen, records)
        if self.page_number - self.start + 1 >= self.max_pages:
            self.has_next_page = False

    def update_request(self, params: MutableMapping[str, Any]) -> None:
        self.page_number += 1
        params[self.page_param] = self.page_number

    def ahead(self, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        for number in itertools.count(self.page_number + 1):
            yield {**params, self.page_param: number}

    def wants(self, asked: Mapping[str, Any]) -> bool:
        number = int(asked[self.page_param])
        return number - self.start < self.max_pages and (
            self.total_pages is None or number <= self.start + self.total_pages - 1
        )


@dataclass
class OffsetPaginator(Paginator):
    """``take``/``skip`` paging (Allyy): skip by the records received until the vendor's total is reached.

    ``total_records_key`` names the body field with the total (``totalItemsCount``);
    without it, an empty page ends the listing. Each request depends on what the
    last page held, so these pages are fetched one at a time.
    """

    take_param: str = "take"
    skip_param: str = "skip"
    take: int = 100
    total_records_key: str | None = None
    max_pages: int = 100_000
    skip: int = field(default=0, init=False)

    def init_request(self, params: MutableMapping[str, Any]) -> None:
        self.has_next_page = True
        self.page_number = 1
        self.skip = 0
        self.size = self.take
        params[self.take_param] = self.take
        params[self.skip_param] = self.skip

    def update_state(self, response: requests.Response | None, body: Any, records: list[Any]) -> None:
        self.skip += len(records)
        if self.total_records_key and isinstance(body, Mapping):
            self.total_records = count(body.get(self.total_records_key), self.total_records_key)
        try:
            self.has_next_page = self.end_signal(self.skip, records)
        except PaginationError:
            raise PaginationError(
                f"page {self.page_number} is empty after {self.skip} of the {self.total_records} records the vendor "
                "announced"
            ) from None
        if self.page_number >= self.max_pages:
            self.has_next_page = False

    def update_request(self, params: MutableMapping[str, Any]) -> None:
        self.page_number += 1
        params[self.skip_param] = self.skip


def records_at(body: Any, key: str | None = None, *, vendor: str, endpoint: str) -> list[Mapping[str, Any]]:
    """The list of records in a body (at ``key`` when the list is wrapped), checked to be objects."""
    value = body
    if key is not None:
        if not isinstance(body, Mapping) or key not in body:
            raise VendorResponseError(
                vendor, endpoint, f"expected an object with a {key!r} list, got {type(body).__name__}"
            )
        value = body[key]
    if not isinstance(value, list):
        raise VendorResponseError(vendor, endpoint, f"expected a JSON array of records, got {type(value).__name__}")
    for index, record in enumerate(value):
        if not isinstance(record, Mapping):
            raise VendorResponseError(vendor, endpoint, f"record {index} is a {type(record).__name__}, not an object")
    return value


def walk_pages(
    fetch: Fetch,
    paginator: Paginator | None = None,
    *,
    vendor: str,
    params: Params = None,
    concurrency: int = 1,
    expected_records: int | None = None,
) -> Iterator[Records]:
    """Every page of a listing, in order, until the paginator says stop: the one paging loop.

    The first page is always yielded (an empty listing is one empty page); an
    empty page after it only ends the listing and is not yielded.

    ``fetch`` makes one request and decodes it into a :class:`Page`. With
    ``concurrency > 1`` and a paginator that can (:attr:`Paginator.prefetch`),
    pages are fetched ahead (:func:`_pages_ahead`); at most ``concurrency`` wait
    in memory. ``expected_records`` (how many the listing held last time, say)
    lets the first page be asked together with the pages it should take.
    """
    paginator = paginator or SinglePage()
    query: dict[str, Any] = dict(params or {})
    paginator.init_request(query)
    if concurrency > 1 and paginator.prefetch:
        yield from _pages_ahead(fetch, paginator, query, concurrency, vendor, expected_records)
        return
    first = _checked(paginator, fetch(dict(query)), vendor)
    yield first
    _say_short(paginator, first, vendor)
    while paginator.has_next_page:
        paginator.update_request(query)
        records = _checked(paginator, fetch(dict(query)), vendor)
        if records:  # the empty page that ends a listing is a signal, not a page of data
            yield records


def _say_short(paginator: Paginator, first: Records, vendor: str) -> None:
    if paginator.has_next_page and paginator.size and len(first) < paginator.size:
        log.info(
            "%s %s: asked for %d records per page, got %d: reading on to the vendor's end signal",
            vendor, first.source, paginator.size, len(first),
        )  # fmt: skip


def pages_to_ask_first(paginator: Paginator, expected_records: int | None, concurrency: int) -> int:
    """How many pages to ask at once to begin with: the first alone, or, when the listing is expected
    to hold ``expected_records``, the pages that takes plus the empty one that ends it (at most
    ``concurrency``). A wrong guess costs requests, never records: the vendor's signal still ends it."""
    if not expected_records or not paginator.size or paginator.total_pages is not None:
        return 1
    return max(1, min(concurrency, -(-expected_records // paginator.size) + 1))


def _pages_ahead(
    fetch: Fetch,
    paginator: Paginator,
    query: dict[str, Any],
    concurrency: int,
    vendor: str,
    expected_records: int | None,
) -> Iterator[Records]:
    """A page-numbered listing fetched ahead, yielded in order: the same pages as one at a time.

    The first page goes alone, or with the pages ``expected_records`` says the
    listing takes and the empty one after them (:func:`pages_to_ask_first`):
    then a day like the last one costs one round trip, and nothing more is
    asked unless the last of them is still full. After it, an announced page count is fetched exactly,
    ``concurrency`` at a time. An end only known when it comes (an empty page)
    is fetched in a window that starts at half of ``concurrency`` and grows by
    one with every full page. A page shorter than the longest one seen is not
    the end (caps are undocumented), but hints at it: no further page is asked
    for until the next one, already asked, answers; so a short listing costs one
    request past its end instead of ``concurrency - 1``.
    """
    ahead = paginator.ahead(query)  # the pages after the first, for as long as the paginator wants them
    full, window, hinted_end = 0, max(2, concurrency // 2), False
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="vendorflow") as pool:
        pending: deque[Future[Page]] = deque([pool.submit(fetch, dict(query))])
        asked_first = pages_to_ask_first(paginator, expected_records, concurrency)
        for _ in range(asked_first - 1):
            pending.append(pool.submit(fetch, next(ahead)))
        try:
            first, seen = True, 0
            while True:
                page = pending.popleft().result()
                seen += 1
                if not first:
                    paginator.update_request(query)
                records = _checked(paginator, page, vendor)
                if records or first:  # the empty page that ends a listing is a signal, not a page of data
                    yield records
                if first:
                    _say_short(paginator, records, vendor)
                if not paginator.has_next_page:
                    return
                if first:
                    # A first page shorter than asked may be the whole listing, or the vendor's cap: ask one more.
                    full, hinted_end = len(records), bool(paginator.size and len(records) < paginator.size)
                elif len(records) >= full:
                    full, window, hinted_end = len(records), window + 1, False
                else:
                    hinted_end = True
                first = False
                if paginator.total_pages is not None:
                    limit = concurrency  # the end is known: exactly the pages before it
                elif seen < asked_first - 1:
                    limit = 0  # the pages asked first hold the expected listing and its end: wait for them
                else:
                    limit = (0 if pending else 1) if hinted_end else min(window, concurrency)
                while len(pending) < limit:
                    asked = next(ahead, None)
                    if asked is None or not paginator.wants(asked):
                        break
                    pending.append(pool.submit(fetch, asked))
                if not pending:
                    problem = f"page {paginator.page_number} promises more pages past the announced end"
                    raise VendorResponseError(vendor, page.endpoint, problem)
        finally:
            for future in pending:
                future.cancel()


def _checked(paginator: Paginator, page: Page, vendor: str) -> Records:
    try:
        paginator.update_state(page.response, page.body, page.records)
    except PaginationError as exc:
        raise VendorResponseError(vendor, page.endpoint, str(exc)) from None
    return Records(
        page.records,
        page.endpoint,
        number=paginator.page_number,
        total_pages=paginator.total_pages,
        total_records=paginator.total_records,
    )


def json_pages(
    client: VendorClient,
    path: str,
    *,
    records_key: str | None = None,
    method: str = "GET",
    form: bool = False,
) -> Fetch:
    """How one page of a JSON listing is fetched: query parameters (or, with ``form``, a form body
    sent with ``method``: Footprints' ``POST /api/loyaltyCode/list`` pages by a form field)."""
    from vendorflow.http.client import decode_json

    def fetch(query: dict[str, Any]) -> Page:
        endpoint = client.describe(method, path, query)
        if form:
            response = client.request(method, path, data=query)
            body = decode_json(response, client.vendor, endpoint)
        else:
            body, response = client.get_json(path, params=query)
        return Page(records_at(body, records_key, vendor=client.vendor, endpoint=endpoint), body, response, endpoint)

    return fetch


def iterate_pages(
    client: VendorClient,
    path: str,
    *,
    params: Params = None,
    paginator: Paginator | None = None,
    records_key: str | None = None,
    method: str = "GET",
    form: bool = False,
    concurrency: int = 1,
    expected_records: int | None = None,
) -> Iterator[Records]:
    """Every page of a JSON listing (:func:`json_pages` walked by :func:`walk_pages`)."""
    fetch = json_pages(client, path, records_key=records_key, method=method, form=form)
    return walk_pages(
        fetch,
        paginator,
        vendor=client.vendor,
        params=params,
        concurrency=concurrency,
        expected_records=expected_records,
    )
