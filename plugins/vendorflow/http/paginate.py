"""Paginators: small state machines that say where the next page is and when to stop.

Each follows the same three steps as dlt's REST client (``init_request``,
``update_state``, ``update_request``) and a ``has_next_page`` flag, so the
loop in :func:`iterate_pages` is the only control flow and every paginator is
tested with a fake response. Pagination stops only on the vendor's own signal
(a total-pages header, a total-results field, an empty page): a page shorter
than asked proves nothing, because page-size caps are not documented.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import requests

from vendorflow.http.records import Records
from vendorflow.errors import VendorResponseError

if TYPE_CHECKING:
    from vendorflow.http.client import Params, VendorClient

T = TypeVar("T")
R = TypeVar("R")


class PaginationError(Exception):
    """The vendor's pagination signals contradict each other."""


class Paginator:
    """Base: one page and done."""

    has_next_page: bool = True
    total_pages: int | None = None
    total_records: int | None = None
    page_number: int = 1

    def init_request(self, params: MutableMapping[str, Any]) -> None:
        self.has_next_page = True

    def update_state(self, response: requests.Response | None, body: Any, records: list[Any]) -> None:
        self.has_next_page = False

    def update_request(self, params: MutableMapping[str, Any]) -> None:
        pass


class SinglePage(Paginator):
    """Endpoints that return everything at once."""


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass
class PageNumberPaginator(Paginator):
    """``page=1, 2, ...`` until the vendor's signal says there is no more.

    - ``total_pages_header``: a header with the page count (``X-Total-Pages``);
    - ``total_records_key``: a body field with the record count (``totalResults``);
    - ``total_records_header``: a header with the record count (``X-Records``), kept
      as ``total_records`` for row-count checks (the page count still decides);
    - neither: stop at the first empty page.
    """

    page_param: str = "page"
    start: int = 1
    size_param: str | None = None
    size: int | None = None
    total_pages_header: str | None = None
    total_records_key: str | None = None
    total_records_header: str | None = None
    max_pages: int = 100_000
    records_seen: int = field(default=0, init=False)

    def init_request(self, params: MutableMapping[str, Any]) -> None:
        self.has_next_page = True
        self.page_number = self.start
        self.records_seen = 0
        params[self.page_param] = self.page_number
        if self.size_param and self.size:
            params[self.size_param] = self.size

    def update_state(self, response: requests.Response | None, body: Any, records: list[Any]) -> None:
        self.records_seen += len(records)
        if self.total_pages_header and response is not None:
            self.total_pages = _int_or_none(response.headers.get(self.total_pages_header))
        if self.total_records_key and isinstance(body, Mapping):
            self.total_records = _int_or_none(body.get(self.total_records_key))
        if self.total_records_header and response is not None:
            self.total_records = _int_or_none(response.headers.get(self.total_records_header))
        pages_done = self.page_number - self.start + 1
        if self.total_pages is not None:
            self.has_next_page = pages_done < self.total_pages
        elif self.total_records is not None:
            self.has_next_page = self.records_seen < self.total_records
        else:
            self.has_next_page = bool(records)
        if self.has_next_page and not records:
            # The vendor's total promises more, yet the page is empty: looping on would never end.
            announced = f"{self.total_pages} pages" if self.total_pages is not None else f"{self.total_records} records"
            raise PaginationError(f"page {self.page_number} is empty although the vendor announced {announced}")
        if pages_done >= self.max_pages:
            self.has_next_page = False

    def update_request(self, params: MutableMapping[str, Any]) -> None:
        self.page_number += 1
        params[self.page_param] = self.page_number


@dataclass
class OffsetPaginator(Paginator):
    """``take``/``skip`` paging (Allyy): skip by the records received until the vendor's total is reached.

    ``total_records_key`` names the body field with the total (``totalItemsCount``);
    without it, an empty page ends the listing. A page shorter than ``take`` is
    not the end: the server may cap ``take`` without saying so.
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
        params[self.take_param] = self.take
        params[self.skip_param] = self.skip

    def update_state(self, response: requests.Response | None, body: Any, records: list[Any]) -> None:
        self.skip += len(records)
        if self.total_records_key and isinstance(body, Mapping):
            self.total_records = _int_or_none(body.get(self.total_records_key))
        if self.total_records is not None:
            self.has_next_page = self.skip < self.total_records
            if self.has_next_page and not records:
                raise PaginationError(
                    f"page {self.page_number} is empty after {self.skip} of the {self.total_records} records the vendor announced"
                )
        else:
            self.has_next_page = bool(records)
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
            raise VendorResponseError(vendor, endpoint, f"expected an object with a {key!r} list, got {type(body).__name__}")
        value = body[key]
    if not isinstance(value, list):
        raise VendorResponseError(vendor, endpoint, f"expected a JSON array of records, got {type(value).__name__}")
    for index, record in enumerate(value):
        if not isinstance(record, Mapping):
            raise VendorResponseError(
                vendor, endpoint, f"record {index} is a {type(record).__name__}, not an object"
            )
    return value


def iterate_pages(
    client: VendorClient,
    path: str,
    *,
    params: Params = None,
    paginator: Paginator | None = None,
    records_key: str | None = None,
    method: str = "GET",
    form: bool = False,
) -> Iterator[Records]:
    """Every page of a listing, one request at a time, until the paginator says stop.

    ``form=True`` sends ``params`` and the paging fields as a form body (Footprints'
    ``POST /api/loyaltyCode/list`` pages by a ``page`` form field), with ``method``.
    """
    from vendorflow.http.client import decode_json

    paginator = paginator or SinglePage()
    query: dict[str, Any] = dict(params or {})
    paginator.init_request(query)
    while True:
        endpoint = client.describe(method, path, query)
        if form:
            response = client.request(method, path, data=dict(query))
            body = decode_json(response, client.vendor, endpoint)
        else:
            body, response = client.get_json(path, params=dict(query))
        records = records_at(body, records_key, vendor=client.vendor, endpoint=endpoint)
        try:
            paginator.update_state(response, body, records)
        except PaginationError as exc:
            raise VendorResponseError(client.vendor, endpoint, str(exc)) from None
        yield Records(
            records,
            endpoint,
            number=paginator.page_number,
            total_pages=paginator.total_pages,
            total_records=paginator.total_records,
        )
        if not paginator.has_next_page:
            return
        paginator.update_request(query)


def bounded_map(fn: Callable[[T], R], items: Iterable[T], concurrency: int) -> Iterator[R]:
    """``map(fn, items)`` on up to ``concurrency`` threads, results in input order.

    At most ``concurrency`` calls are in flight and at most ``concurrency``
    results wait to be consumed, so memory stays bounded however many items
    there are. The first exception is raised to the consumer after the
    in-flight calls finish.
    """
    if concurrency <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="vendorflow") as pool:
        pending: deque[Future[R]] = deque()
        iterator = iter(items)
        try:
            for item in iterator:
                pending.append(pool.submit(fn, item))
                if len(pending) >= concurrency:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def numbered_pages(
    fetch: Callable[[int], Records], *, start: int, stop: int | None, concurrency: int
) -> Iterator[Records]:
    """Pages ``start``, ``start + 1``, ... fetched ``concurrency`` at a time and yielded in order.

    With ``stop`` (the last page, when the vendor announced the count) exactly
    those pages are fetched. Without it, pages are fetched ahead in a window of
    ``concurrency`` until the first empty page, the vendor's only end signal
    (a short page proves nothing under an undocumented size cap); at most
    ``concurrency - 1`` requests past the end are wasted. Memory holds at most
    ``concurrency`` pages.
    """
    if stop is not None:
        yield from bounded_map(fetch, range(start, stop + 1), concurrency)
        return
    pages = bounded_map(fetch, itertools.count(start), concurrency)
    try:
        for page in pages:
            if not page:
                return
            yield page
    finally:
        pages.close()  # cancels the pages fetched ahead that nobody will read


class Counter:
    """A thread-safe counter for progress figures."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    def add(self, n: int = 1) -> int:
        with self._lock:
            self._value += n
            return self._value

    @property
    def value(self) -> int:
        return self._value
