"""Airflow assets for the datasets: one per ``<vendor>/<dataset>``, cheap to build at parse time.

An asset event is emitted only after a partition passed validation and was
published; its ``extra`` says which partition (``dt``), how many rows and where.
"""

from __future__ import annotations

from airflow.sdk import Asset

URI_SCHEME = "x-vendorflow"


def asset(key: str) -> Asset:
    """The asset of dataset ``<vendor>/<dataset>``."""
    vendor, _, name = key.partition("/")
    if not vendor or not name:
        raise ValueError(f"dataset key must be '<vendor>/<dataset>', not {key!r}")
    return Asset(name=key, uri=f"{URI_SCHEME}://{vendor}/{name}")
