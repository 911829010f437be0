"""Vendor records to Arrow record batches, strictly.

Each column is first offered to pyarrow as is (type inference in C); when the
inferred type is already the declared one, that is the whole cost. Otherwise
every value goes through the column type's Python converter, which accepts the
documented variants (money as ``"12.3400"``, flags as ``0``/``1``, ids as
numeric strings) and names the first value that fits none of them. Nothing is
coerced silently: ``3.5`` is not an integer, ``"n/a"`` is not a count.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from vendorflow.accounts import DEFAULT as DEFAULT_ACCOUNT
from vendorflow.datasets.spec import Column, DatasetSpec, output_name
from vendorflow.pii import pseudonymise
from vendorflow.pipeline.schema import ACCOUNT, ARROW_TYPES, EXTRACTED_AT
from vendorflow.settings import PiiMode

_MISSING = object()
_INT = re.compile(r"^[+-]?\d+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")
_FOUR_PLACES = Decimal("0.0001")
_DECIMAL_LIMIT = Decimal(10) ** 14  # decimal128(18, 4): 14 digits before the point


class RecordError(ValueError):
    """A value that does not fit its column; ``index`` is the record's position in its page."""

    def __init__(self, index: int, column: Column, value: Any, reason: str) -> None:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        self.index = index
        super().__init__(f"record {index}: field {column.path!r} = {shown} {reason}")


def to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("is a boolean, not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INT.match(value.strip()):
        return int(value.strip())
    raise ValueError("is not an integer")


def to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("is a boolean, not a number")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError("is not a number")


_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f"}


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError("is not a boolean (true/false, 1/0)")


def to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"is a {type(value).__name__}, not a string")


def to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("is a boolean, not an amount")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else str(value))
    except (InvalidOperation, ValueError, TypeError):
        raise ValueError("is not an amount") from None
    if not amount.is_finite() or abs(amount) >= _DECIMAL_LIMIT:
        raise ValueError("is not a finite amount below 10^14")
    return amount.quantize(_FOUR_PLACES)


def to_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DATE.match(value.strip()):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    raise ValueError("is not an ISO 8601 date")


def timestamp_converter(naive_tz: str) -> Callable[[Any], datetime]:
    zone = timezone.utc if naive_tz == "UTC" else ZoneInfo(naive_tz)

    def to_timestamp(value: Any) -> datetime:
        if isinstance(value, datetime):
            moment = value
        elif isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                raise ValueError("is not an ISO 8601 instant") from None
        else:
            raise ValueError("is not an ISO 8601 instant")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        return moment.astimezone(timezone.utc)

    return to_timestamp


def to_json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "int64": to_int,
    "float64": to_float,
    "bool": to_bool,
    "string": to_string,
    "decimal": to_decimal,
    "date": to_date,
    "json": to_json,
}

# Inferred Arrow types that are already right (or losslessly castable) for a column type.
_ACCEPT_INFERRED: dict[str, tuple[pa.DataType, ...]] = {
    "int64": (pa.int64(), pa.null()),
    "float64": (pa.float64(), pa.int64(), pa.null()),
    "bool": (pa.bool_(), pa.null()),
    "string": (pa.string(), pa.null()),
    "json": (pa.null(),),
}


def get_path(record: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or ``_MISSING`` when a key on the way is absent."""
    if "." not in path:
        return record.get(path, _MISSING)
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None if value is None else _MISSING
        value = value.get(part, _MISSING)
        if value is _MISSING:
            return _MISSING
    return value


def scrub_secrets(array: pa.Array) -> pa.Array:
    """A string column with every secret the process holds masked (a vendor answer that echoes a
    request's headers or URL must not put a token into a dataset). Vectorised: a column without
    any secret costs one substring search per secret."""
    from vendorflow.http.redact import MASK, known_secrets

    if not pa.types.is_string(array.type) or not len(array):
        return array
    import pyarrow.compute as pc

    for secret in known_secrets():
        if pc.any(pc.match_substring(array, secret)).as_py():
            array = pc.replace_substring(array, secret, MASK)
    return array


class BatchBuilder:
    """Turns pages of records into record batches of one dataset's schema."""

    def __init__(
        self,
        spec: DatasetSpec,
        schema: pa.Schema,
        *,
        pii_mode: PiiMode,
        pii_key: bytes | None,
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        if pii_mode == "hmac" and any(c.pii for c in spec.columns) and not pii_key:
            raise ValueError("a key is required to pseudonymise personal data")
        self.spec = spec
        self.schema = schema
        self.pii_mode = pii_mode
        self.pii_key = pii_key
        self.account = account
        self.rows = 0
        self._absent = dict.fromkeys((c.name for c in spec.columns), 0)
        self._unmapped: dict[str, int] = {}
        self._known = frozenset({c.path.split(".")[0] for c in spec.columns} | set(spec.ignore_fields))
        self._converters = {
            c.name: timestamp_converter(c.naive_tz) if c.type == "timestamp" else CONVERTERS[c.type]
            for c in spec.columns
        }

    def _raw(self, records: Sequence[Mapping[str, Any]], column: Column) -> list[Any]:
        path = column.path
        values = [get_path(r, path) for r in records]
        self._absent[column.name] += values.count(_MISSING)
        if column.required:
            for index, value in enumerate(values):
                if value is _MISSING:
                    raise RecordError(index, column, "<missing>", "is missing (the key is required)")
        values = [None if v is _MISSING else v for v in values]
        if column.transform is not None:
            transform = column.transform
            out = []
            for index, value in enumerate(values):
                try:
                    out.append(transform(value))
                except (ValueError, TypeError) as exc:
                    raise RecordError(index, column, value, str(exc)) from None
            values = out
        return values

    def _array(self, values: list[Any], column: Column) -> pa.Array:
        target = ARROW_TYPES[column.type]
        if column.pii:
            if self.pii_mode == "hmac":
                key = self.pii_key or b""
                values = [pseudonymise(to_string(v), column.pii, key) if v is not None else None for v in values]
            return pa.array(values, pa.string())
        accepted = _ACCEPT_INFERRED.get(column.type)
        if accepted:
            try:
                inferred = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                inferred = None
            if inferred is not None and inferred.type in accepted:
                return inferred if inferred.type == target else inferred.cast(target)
        convert = self._converters[column.name]
        converted = []
        for index, value in enumerate(values):
            if value is None:
                converted.append(None)
                continue
            try:
                converted.append(convert(value))
            except ValueError as exc:
                raise RecordError(index, column, value, str(exc)) from None
        try:
            return pa.array(converted, target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise RecordError(0, column, "<column>", f"does not fit {target}: {exc}") from None

    def _note_unmapped(self, records: Sequence[Mapping[str, Any]]) -> None:
        seen: set[str] = set()
        for record in records:
            seen.update(record.keys())
        for name in seen - self._known:  # usually none: the per-record count runs only for drift
            self._unmapped[name] = self._unmapped.get(name, 0) + sum(1 for r in records if name in r)

    def drift(self) -> dict[str, Any]:
        """How the records differed from the declaration so far: fields no column maps (with how many
        records had each), and declared fields absent from every record. Empty when none."""
        drift: dict[str, Any] = {}
        if self._unmapped:
            drift["unmapped_fields"] = dict(sorted(self._unmapped.items()))
        absent = [c.path for c in self.spec.columns if self.rows and self._absent[c.name] == self.rows]
        if absent:
            drift["absent_fields"] = absent
        return drift

    def build(self, records: Sequence[Mapping[str, Any]], extracted_at: datetime) -> pa.RecordBatch:
        self._note_unmapped(records)
        arrays = [self._array(self._raw(records, c), c) for c in self.spec.columns]
        self.rows += len(records)
        arrays = [scrub_secrets(a) for a in arrays]
        arrays.append(pa.array([self.account] * len(records), pa.string()))
        arrays.append(pa.array([extracted_at] * len(records), ARROW_TYPES["timestamp"]))
        names = [output_name(c, self.pii_mode) for c in self.spec.columns] + [ACCOUNT, EXTRACTED_AT]
        assert names == self.schema.names
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)
