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
``concurrency - 1`` requests go past the empty page that ends the listing.
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
from vendorflow.http.concurrency import bounded_map
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
        last = self.start + self.total_pages - 1 if self.total_pages is not None else None
        numbers = range(self.page_number + 1, last + 1) if last is not None else itertools.count(self.page_number + 1)
        for number in numbers:
            yield {**params, self.page_param: number}


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
) -> Iterator[Records]:
    """Every page of a listing, in order, until the paginator says stop: the one paging loop.

    The first page is always yielded (an empty listing is one empty page); an
    empty page after it only ends the listing and is not yielded.

    ``fetch`` makes one request and decodes it into a :class:`Page`. With
    ``concurrency > 1`` and a paginator that can (:attr:`Paginator.prefetch`),
    the pages after the first are fetched that many at a time; at most
    ``concurrency`` pages wait in memory.
    """
    paginator = paginator or SinglePage()
    query: dict[str, Any] = dict(params or {})
    paginator.init_request(query)
    first = fetch(dict(query))
    yield _checked(paginator, first, vendor)
    if paginator.has_next_page and paginator.size and len(first.records) < paginator.size:
        log.info(
            "%s %s: asked for %d records per page, got %d: reading on to the vendor's end signal",
            vendor,
            first.endpoint,
            paginator.size,
            len(first.records),
        )
    if not paginator.has_next_page:
        return
    if concurrency > 1 and paginator.prefetch and paginator.total_pages is None:
        yield from _pages_to_an_unknown_end(fetch, paginator, query, concurrency, vendor, len(first.records))
        return
    if concurrency > 1 and paginator.prefetch:
        pages = bounded_map(fetch, paginator.ahead(query), concurrency)
        try:
            for page in pages:
                paginator.update_request(query)
                records = _checked(paginator, page, vendor)
                if records:  # the empty page that ends a listing is a signal, not a page of data
                    yield records
                if not paginator.has_next_page:
                    return
        finally:
            pages.close()  # cancels the pages fetched ahead that nobody will read
        return
    while paginator.has_next_page:
        paginator.update_request(query)
        records = _checked(paginator, fetch(dict(query)), vendor)
        if records:
            yield records


def _pages_to_an_unknown_end(
    fetch: Fetch, paginator: Paginator, query: dict[str, Any], concurrency: int, vendor: str, first_size: int
) -> Iterator[Records]:
    """Pages after the first of a listing whose end is only known when it comes (an empty page, or a record
    count reached), fetched ahead in a window that starts at half of ``concurrency`` and grows by one with
    every full page, up to ``concurrency``.

    A page shorter than the longest one seen is not the end (caps are undocumented), but hints at it: no
    further page is asked for until the next one, already asked, answers. So a day that fits in one or two
    pages costs one request past its end instead of ``concurrency - 1``, and a long day still reaches
    ``concurrency`` pages in flight after a few round trips.
    """
    full, window = first_size, max(2, concurrency // 2)
    # A first page shorter than asked may be the whole listing, or the vendor's cap: ask one more to know.
    hinted_end = bool(paginator.size and first_size < paginator.size)
    ahead = paginator.ahead(query)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="vendorflow") as pool:
        pending: deque[Future[Page]] = deque()
        try:
            while True:
                # After a hint, only the page that confirms it (already asked for, or asked now).
                limit = (0 if pending else 1) if hinted_end else min(window, concurrency)
                while len(pending) < limit:
                    pending.append(pool.submit(fetch, next(ahead)))
                page = pending.popleft().result()
                paginator.update_request(query)
                records = _checked(paginator, page, vendor)
                if records:  # the empty page that ends a listing is a signal, not a page of data
                    yield records
                if not paginator.has_next_page:
                    return
                if len(records) >= full:
                    full, window, hinted_end = len(records), window + 1, False
                else:
                    hinted_end = True
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
) -> Iterator[Records]:
    """Every page of a JSON listing (:func:`json_pages` walked by :func:`walk_pages`)."""
    fetch = json_pages(client, path, records_key=records_key, method=method, form=form)
    return walk_pages(fetch, paginator, vendor=client.vendor, params=params, concurrency=concurrency)
