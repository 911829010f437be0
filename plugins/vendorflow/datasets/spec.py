"""How a dataset is declared: columns, key, expectations and where its records come from.

Declarations are plain data, cheap to import at DAG parse time: column types
are names (``"int64"``, ``"decimal"``...) that :mod:`vendorflow.pipeline.schema`
turns into a pyarrow schema when a task runs, and expectations name Great
Expectations classes that :mod:`vendorflow.pipeline.validate` builds then.
One machinery (:func:`vendorflow.pipeline.run.run_dataset`) extracts, writes,
validates and publishes every declared dataset.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal

from vendorflow.http.records import Records

if TYPE_CHECKING:
    from vendorflow.progress import Progress
    from vendorflow.settings import PiiMode

ColumnType = Literal["int64", "float64", "bool", "string", "date", "timestamp", "decimal", "json"]
COLUMN_TYPES: frozenset[str] = frozenset(ColumnType.__args__)  # type: ignore[attr-defined]
Pii = Literal["email", "phone"]


@dataclass(frozen=True)
class Column:
    """One output column and where its value comes from in a vendor record.

    - ``source``: the key in the record, dotted for nested objects (``offer.name``);
      defaults to ``name``.
    - ``required``: the key must be present in every record (its absence breaks the schema).
    - ``nullable``: ``False`` adds a not-null expectation.
    - ``pii``: ``email`` or ``phone``; written as ``<name>_hmac`` unless ``pii_mode=plain``.
    - ``transform``: a function applied to the raw value before type conversion,
      for vendor quirks the type alone does not cover.
    - ``naive_tz``: for ``timestamp`` values without an offset, the zone they are in.
    """

    name: str
    type: ColumnType
    source: str | None = None
    required: bool = False
    nullable: bool = True
    pii: Pii | None = None
    transform: Callable[[Any], Any] | None = field(default=None, compare=False)
    naive_tz: str = "UTC"
    description: str = ""

    def __post_init__(self) -> None:
        if self.type not in COLUMN_TYPES:
            raise ValueError(f"column {self.name!r}: unknown type {self.type!r}; use one of {sorted(COLUMN_TYPES)}")
        if self.pii and self.type != "string":
            raise ValueError(f"column {self.name!r}: personal data columns must be strings")

    @property
    def path(self) -> str:
        return self.source or self.name


@dataclass(frozen=True)
class Param:
    """An expectation argument known only when the task runs: one of the run's facts (``dt``,
    ``day_start``, ``day_end``, ``rows``, ``min_rows``, or what the extractor put in
    :attr:`ExtractContext.facts`, such as a vendor's announced total)."""

    name: str

    def gx(self) -> dict[str, str]:
        """Great Expectations' spelling of a run-time value."""
        return {"$PARAMETER": self.name}


def param(name: str) -> Param:
    """A value known only when the task runs (see :class:`Param`)."""
    return Param(name)


@dataclass(frozen=True)
class Expect:
    """A Great Expectations expectation by class name, e.g. ``Expect("ExpectColumnValuesToBeBetween", column="views",
    min_value=0)``."""

    type: str
    kwargs: Mapping[str, Any]

    def __init__(self, type: str, /, **kwargs: Any) -> None:  # noqa: A002 - GX's own word
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "kwargs", kwargs)


@dataclass
class ExtractContext:
    """What an extractor gets: the vendor hook, the day, its inputs and the progress reporter.

    ``inputs`` are the values the task hands the extractor (the operator's
    ``extract_params``). An extractor puts what it learns into ``facts`` (the
    vendor's announced total, say), for expectations that name them with
    :func:`param`.
    """

    hook: Any
    dt: date
    inputs: Mapping[str, Any]
    progress: Progress
    facts: dict[str, Any] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("vendorflow.extract"))
    account: str = "default"  # the vendor account being read (vendorflow.accounts)
    # How many rows the day is likely to hold (the published partition's, else the day before's): a hint for
    # fetching ahead, never a check.
    expected_rows: int | None = None

    @property
    def day_start(self) -> datetime:
        return datetime.combine(self.dt, time.min, tzinfo=timezone.utc)

    @property
    def day_end(self) -> datetime:
        return self.day_start + timedelta(days=1)


Extractor = Callable[[ExtractContext], Iterable[Records]]


def output_name(column: Column, pii_mode: PiiMode = "hmac") -> str:
    """``email`` becomes ``email_hmac`` unless the deployment opted into plain values."""
    if column.pii and pii_mode == "hmac":
        return f"{column.name}_hmac"
    return column.name


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: ``<vendor>/<name>``, partitioned by ``dt`` (the run's logical date).

    ``snapshot=True`` means each partition holds the vendor's whole list as
    seen that day; otherwise it holds the records *of* that day.
    """

    vendor: str
    name: str
    description: str
    columns: tuple[Column, ...]
    extract: Extractor = field(compare=False)
    key: tuple[str, ...] = ()
    expectations: tuple[Expect, ...] = ()
    snapshot: bool = False
    # Rows per Parquet row group (the write buffer); None: the pipeline's default. Wide,
    # large datasets set it lower so a big day's memory stays that of a few pages.
    row_group_rows: int | None = None
    # A rerun may not replace a published partition with fewer than this share of its rows (an
    # empty answer never replaces rows), unless the run says accept_shrink; None: no such guard.
    shrink_limit: float | None = 0.5
    # Top-level fields the vendor sends that are dropped on purpose (personal data, noise): not
    # reported as schema drift.
    # How to read it, for the README and the DAG docs (Markdown): what a row is, what the
    # partition holds, the vendor's quirks a reader must know. Columns are listed from ``columns``.
    notes: str = ""
    ignore_fields: tuple[str, ...] = ()
    # Days before its own that a daily run re-extracts, for vendor data that changes after its day
    # (a lead's status, late ad statistics); the Variable ``lookback_days`` overrides it per dataset.
    # A re-extracted day is republished only when its content changed.
    lookback_days: int = 0

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.key_name}: duplicate column names")
        if self.lookback_days and self.snapshot:
            raise ValueError(f"{self.key_name}: a snapshot has no lookback (it holds the state when extracted)")
        if self.shrink_limit is not None and not 0 < self.shrink_limit <= 1:
            raise ValueError(f"{self.key_name}: shrink_limit must be in (0, 1], not {self.shrink_limit!r}")
        missing = set(self.key) - set(names)
        if missing:
            raise ValueError(f"{self.key_name}: key columns {sorted(missing)} are not declared")

    @property
    def key_name(self) -> str:
        return f"{self.vendor}/{self.name}"


def ledger_pages(
    name: str, row: Callable[[Any], Mapping[str, Any] | None], source: str | None = None
) -> Iterator[Records]:
    """A :class:`vendorflow.ledger.Ledger` as pages of records, for datasets that publish what the
    pipeline did: ``row(entry)`` makes an entry a record, or ``None`` leaves it out."""
    from vendorflow.ledger import Ledger

    rows = (record for entry in Ledger(name).entries() if (record := row(entry)) is not None)
    yield from pages_of(rows, source or f"ledger {name}")


def pages_of(records: Iterable[Mapping[str, Any]], source: str, size: int = 10_000) -> Iterator[Records]:
    """Cut an iterable of records into pages (for extractors whose vendor answers one long list)."""
    batch = Records((), source)
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = Records((), source)
    if batch:
        yield batch
