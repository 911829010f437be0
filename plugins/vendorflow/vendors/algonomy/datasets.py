"""Algonomy datasets: ``algonomy/optouts``, the opt-out ledger published for analysts.

The ledger (:mod:`vendorflow.ledger`, table ``algonomy_optouts``) is the
source of truth: every user id is written there as ``requested`` before it is
sent and marked ``accepted`` once Algonomy accepts it. The dataset is the
ledger as Parquet: one row per user id, in the partition of the logical date
of the run that first requested it (``dt``); a later run that accepts a
left-over id republishes that id's partition, so the whole dataset is always
one row per user id, with its latest status.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from vendorflow.datasets.spec import Column, DatasetSpec, Expect, ExtractContext, Records, ledger_pages
from vendorflow.vendors.algonomy.optouts import LEDGER, STATUSES, split_key


def ledger_row(key: str, status: str, data: Mapping[str, Any], updated_at: Any) -> dict[str, Any]:
    """One ledger entry as a dataset record."""
    return {
        "user_id": split_key(key)[1],
        "status": status,
        "requested_at": data.get("requested_at"),
        "accepted_at": data.get("accepted_at"),
        "http_status": data.get("http_status"),
        "answer": data.get("answer"),
        "attempts": data.get("attempts", 0),
        "last_error": data.get("last_error"),
        "source": data.get("source"),
        "run_id": data.get("run_id"),
        "updated_at": updated_at.isoformat() if hasattr(updated_at, "isoformat") else updated_at,
    }


def extract_optouts(ctx: ExtractContext) -> Iterator[Records]:
    """Every ledger entry of the account first requested by a run of logical date ``dt``."""
    day = ctx.dt.isoformat()

    def row(entry: Any) -> dict[str, Any] | None:
        if entry.data.get("dt") != day or split_key(entry.key)[0] != ctx.account:
            return None
        return ledger_row(entry.key, entry.status, entry.data, entry.updated_at)

    yield from ledger_pages(LEDGER, row, f"ledger {LEDGER} dt={day}")


OPTOUTS = DatasetSpec(
    vendor="algonomy",
    name="optouts",
    notes=(
        "the ledger as Parquet: one row per account and user id, in the partition `dt` of the run that first "
        "requested it; "
        "`status` is `requested`, `accepted` or `failed`; `source` is `params` or `inbox:<file>`; "
        "a later run that accepts a left-over id republishes that partition"
    ),
    description=(
        "Every user id the pipeline was asked to opt out of Algonomy, with its status: requested (written before "
        "sending), accepted (Algonomy's answer and when), failed (the last attempt was refused; the next run retries)."
    ),
    columns=(
        Column("user_id", "string", required=True, nullable=False, description="the id as sent (trimmed)"),
        Column("status", "string", required=True, nullable=False),
        Column(
            "requested_at",
            "timestamp",
            required=True,
            nullable=False,
            description="written to the ledger, before sending",
        ),
        Column("accepted_at", "timestamp", description="when Algonomy accepted it"),
        Column("http_status", "int64", description="the accepting answer's HTTP status"),
        Column("answer", "json", description="the accepting answer's body ({} as documented)"),
        Column("attempts", "int64", required=True, nullable=False, description="times this pipeline sent it"),
        Column("last_error", "string", description="why the last attempt failed, if it did"),
        Column("source", "string", description="'params' (a manual trigger) or 'inbox:<file name>'"),
        Column("run_id", "string", description="the run that requested it"),
        Column("updated_at", "timestamp", required=True, nullable=False),
    ),
    key=("user_id",),
    expectations=(
        Expect("ExpectColumnValuesToBeInSet", column="status", value_set=list(STATUSES)),
        Expect("ExpectColumnValuesToBeBetween", column="attempts", min_value=0),
        Expect(
            "ExpectColumnPairValuesAToBeGreaterThanB", column_A="updated_at", column_B="requested_at", or_equal=True
        ),
    ),
    extract=extract_optouts,
)

DATASETS = (OPTOUTS,)
