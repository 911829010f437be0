"""The content fingerprint that tells a changed day from an unchanged one."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa

from vendorflow.pipeline.fingerprint import ContentHash


def _batch(rows: list[tuple[str, str]], extracted: datetime) -> pa.RecordBatch:
    ts = pa.timestamp("us", tz="UTC")
    return pa.RecordBatch.from_pydict(
        {
            "lead_id": [r[0] for r in rows],
            "status": [r[1] for r in rows],
            "_extracted_at": pa.array([extracted] * len(rows), ts),
        }
    )


def _digest(*batches: pa.RecordBatch) -> str:
    fingerprint = ContentHash()
    for batch in batches:
        fingerprint.add(batch)
    return fingerprint.hexdigest()


def test_same_rows_in_another_order_pages_or_extraction_time_have_the_same_fingerprint() -> None:
    early, late = datetime(2024, 3, 1, tzinfo=timezone.utc), datetime(2024, 3, 9, tzinfo=timezone.utc)
    rows = [("a", "lead"), ("b", "lead"), ("c", "customer")]
    one = _digest(_batch(rows, early))
    assert _digest(_batch(rows[2:], late), _batch(rows[:2], late)) == one


def test_a_changed_status_an_added_or_a_removed_row_changes_it() -> None:
    now = datetime(2024, 3, 1, tzinfo=timezone.utc)
    rows = [("a", "lead"), ("b", "lead")]
    base = _digest(_batch(rows, now))
    assert _digest(_batch([("a", "lead"), ("b", "customer")], now)) != base
    assert _digest(_batch([*rows, ("c", "lead")], now)) != base
    assert _digest(_batch(rows[:1], now)) != base
    assert _digest(_batch([], now)) != base
