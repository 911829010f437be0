"""Progress lines for long work: done/total, rows, rate and time left, at a readable cadence."""

from __future__ import annotations

import logging
import threading
import time


def _fmt_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def noun(count: int, plural: str) -> str:
    """``plural`` as it reads after ``count``: "1 page", "2 pages", "1 opt-out"."""
    return plural[:-1] if count == 1 and plural.endswith("s") else plural


def counted(count: int, plural: str) -> str:
    """``count`` and its noun: "1 row", "1,200 rows"."""
    return f"{count:,} {noun(count, plural)}"


class Progress:
    """Counts units of work (pages, requests, campaigns) and rows; logs at most every ``every`` seconds."""

    def __init__(
        self,
        what: str,
        *,
        log: logging.Logger | None = None,
        unit: str = "pages",
        total: int | None = None,
        every: float = 10.0,
        clock: callable = time.monotonic,  # type: ignore[valid-type]
    ) -> None:
        self.what = what
        self.log = log or logging.getLogger("vendorflow.progress")
        self.unit = unit
        self.total = total
        self.every = every
        self._clock = clock
        self.started = clock()
        self._last = self.started
        self.done = 0
        self.rows = 0
        self._lock = threading.Lock()

    def set_total(self, total: int | None, unit: str | None = None) -> None:
        self.total = total
        if unit:
            self.unit = unit

    @property
    def elapsed(self) -> float:
        return self._clock() - self.started

    def advance(self, units: int = 1, rows: int = 0) -> None:
        with self._lock:
            self.done += units
            self.rows += rows
            now = self._clock()
            finished = self.total is not None and self.done >= self.total
            if finished or now - self._last < self.every:
                return  # the caller logs the final line
            self._last = now
        self.log.info("%s", self.line())

    def line(self) -> str:
        elapsed = max(self.elapsed, 1e-9)
        rate = self.done / elapsed
        done = f"{self.done:,}/{self.total:,}" if self.total else f"{self.done:,}"
        unit = noun(self.total or self.done, self.unit)
        text = (
            f"{self.what}: {done} {unit}, {counted(self.rows, 'rows')}, {rate:.2f} {self.unit}/s, "
            f"{self.rows / elapsed:,.0f} rows/s"
        )
        if self.total and rate > 0 and self.done < self.total:
            text += f", ~{_fmt_duration((self.total - self.done) / rate)} left"
        return text
