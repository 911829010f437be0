"""A page of vendor records: the unit every paging loop yields and every extractor streams."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class Records(list):  # type: ignore[type-arg]
    """A page of vendor records (a plain list) that remembers where it came from.

    ``source`` is the request, secret-free, for error messages; ``number``,
    ``total_pages`` and ``total_records`` are the vendor's pagination figures
    when it gives them.
    """

    def __init__(
        self,
        records: Iterable[Mapping[str, Any]] = (),
        source: str = "",
        *,
        number: int = 1,
        total_pages: int | None = None,
        total_records: int | None = None,
    ) -> None:
        super().__init__(records)
        self.source = source
        self.number = number
        self.total_pages = total_pages
        self.total_records = total_records

    @property
    def records(self) -> list[Mapping[str, Any]]:
        return self


def joined(pages: Iterable[Records]) -> Records:
    """The pages of a listing as one list (for small listings; extractors stream the pages), with the
    first page's source and the last page's totals."""
    pages = list(pages)
    every = Records(
        (r for p in pages for r in p),
        pages[0].source if pages else "",
        total_pages=pages[-1].total_pages if pages else None,
        total_records=pages[-1].total_records if pages else None,
    )
    return every
