"""What the vendorflow page shows, read from the data root and the ledger (never from a vendor).

Plain functions and dataclasses with no Airflow import, so the page's content
is unit-tested on its own; ``vendorflow.ui.app`` only renders it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

# A daily dataset's day D is due once its DAG has run after D ends; this many hours past midnight
# UTC (the DAGs run between 00:00 and 01:30) it is late (``VENDORFLOW_FRESHNESS_GRACE_HOURS``).
GRACE_HOURS = float(os.environ.get("VENDORFLOW_FRESHNESS_GRACE_HOURS", "6"))
CHART_DAYS = 30


@dataclass(frozen=True)
class Quarantined:
    dt: str
    run: str
    folder: str
    reasons: list[str]


@dataclass
class DatasetStatus:
    dataset: str
    description: str
    snapshot: bool
    rows_by_day: dict[str, int] = field(default_factory=dict)  # the last CHART_DAYS days, oldest first
    newest: str | None = None
    newest_rows: int | None = None
    validation: str | None = None
    docs_page: str | None = None  # relative to the Data Docs site
    validation_passed: bool | None = None
    expected: str | None = None
    quarantined: list[Quarantined] = field(default_factory=list)
    today: date = field(default_factory=date.today)  # "now" of the page, for ages

    @property
    def late(self) -> bool:
        return self.expected is not None and (self.newest is None or self.newest < self.expected)

    @property
    def age_days(self) -> int | None:
        if self.newest is None:
            return None
        return (self.today - date.fromisoformat(self.newest)).days


@dataclass
class Actions:
    optouts: dict[str, int] = field(default_factory=dict)  # status -> users
    optouts_open: list[dict[str, Any]] = field(default_factory=list)  # requested or failed, newest first
    uploads: list[dict[str, Any]] = field(default_factory=list)  # newest first
    training: list[dict[str, Any]] = field(default_factory=list)  # one per Recomendo account
    notes: list[str] = field(default_factory=list)  # why a part is empty


def expected_newest(now: datetime, grace_hours: float = GRACE_HOURS) -> str:
    """The newest day a daily dataset should hold at ``now``."""
    return ((now - timedelta(hours=grace_hours)).date() - timedelta(days=1)).isoformat()


def dataset_statuses(
    data_root: str, gx_root: Path, *, now: datetime | None = None, days: int = CHART_DAYS
) -> list[DatasetStatus]:
    from vendorflow import datasets
    from vendorflow.pipeline import docs
    from vendorflow.pipeline.storage import Lake

    now = now or datetime.now(timezone.utc)
    lake = Lake(data_root)
    first = (now.date() - timedelta(days=days - 1)).isoformat()
    statuses = []
    for spec in datasets.declared():
        status = DatasetStatus(
            spec.key_name, spec.description, spec.snapshot, expected=expected_newest(now), today=now.date()
        )
        partitions = lake.partitions(spec.key_name)
        manifests = {dt: day_manifests(lake, spec.key_name, dt) for dt in partitions if dt >= first}
        status.rows_by_day = {dt: sum(int(m.get("rows") or 0) for m in ms) for dt, ms in manifests.items() if ms}
        if partitions:
            status.newest = partitions[-1]
            newest = manifests.get(status.newest) or day_manifests(lake, spec.key_name, status.newest)
            if newest:
                status.newest_rows = sum(int(m.get("rows") or 0) for m in newest)
                status.validation = (
                    newest[0].get("validation")
                    if len(newest) == 1
                    else "; ".join(f"{m.get('account', 'default')}: {m.get('validation')}" for m in newest)
                )
        newest_validation = docs.latest(gx_root, spec.key_name)
        if newest_validation is not None:
            status.docs_page = newest_validation.page
            status.validation_passed = newest_validation.success
        status.quarantined = quarantined(lake, spec.key_name)
        statuses.append(status)
    return statuses


def day_manifests(lake: Any, dataset: str, dt: str) -> list[dict[str, Any]]:
    """The manifests of every account's file of a day (one without configured accounts)."""
    found = (lake.read_manifest(dataset, dt, account) for account in lake.accounts(dataset, dt))
    return [m for m in found if m is not None]


def quarantined(lake: Any, dataset: str, limit: int = 10) -> list[Quarantined]:
    """The newest quarantined batches of a dataset, with the expectations they failed."""
    from vendorflow.pipeline.docs import describe_failure

    found = []
    root = lake.join("_quarantine", dataset)
    try:
        days = sorted(lake.fs.ls(root, detail=False), reverse=True)
    except FileNotFoundError:
        return []
    for day in days:
        for run in sorted(lake.fs.ls(day, detail=False), reverse=True):
            reasons: list[str] = []
            with contextlib.suppress(FileNotFoundError, ValueError):
                with lake.fs.open(f"{run}/validation.json", "rb") as handle:
                    result = json.loads(handle.read())
                reasons = [describe_failure(r) for r in result.get("results", []) if not r.get("success")]
            found.append(
                Quarantined(
                    day.rstrip("/").split("/")[-1].removeprefix("dt="),
                    run.rstrip("/").split("/")[-1],
                    lake.url(run),
                    reasons or ["(no validation result stored)"],
                )
            )
            if len(found) >= limit:
                return found
    return found


def _ledger_exists() -> bool:
    """Whether any action ever wrote to the ledger (looking must not create one)."""
    from vendorflow import settings
    from vendorflow.ledger import ledger_path

    return settings.ledger_url() is not None or ledger_path().exists()


def _iso(epoch: Any) -> str | None:
    return (
        datetime.fromtimestamp(float(epoch), timezone.utc).isoformat(timespec="seconds") if epoch is not None else None
    )


def _newest(entries: Iterable[Any], limit: int) -> list[Any]:
    return sorted(entries, key=lambda e: e.updated_at, reverse=True)[:limit]


def actions(*, limit: int = 20, training_interval: float = 1800.0) -> Actions:
    from vendorflow.ledger import Ledger
    from vendorflow.vendors.algonomy.optouts import ACCEPTED, FAILED, LEDGER, REQUESTED
    from vendorflow.vendors.allyy.datasets import UPLOADS_LEDGER
    from vendorflow.vendors.recomendo import training as recomendo_training

    found = Actions()
    if not _ledger_exists():
        found.notes.append("No action has run yet: the ledger is empty.")
        return found
    optouts = Ledger(LEDGER)
    found.optouts = {status: optouts.count(status) for status in (REQUESTED, ACCEPTED, FAILED)}
    for entry in _newest(optouts.with_status(REQUESTED, FAILED), limit):
        found.optouts_open.append(
            {
                "user": entry.key,
                "status": entry.status,
                "message": entry.data.get("message"),
                "updated_at": entry.updated_at.isoformat(timespec="seconds"),
            }
        )
    for entry in _newest(Ledger(UPLOADS_LEDGER).entries(), limit):
        found.uploads.append(
            {
                "upload": entry.key,
                "status": entry.status,
                "message": entry.data.get("message"),
                "updated_at": entry.updated_at.isoformat(timespec="seconds"),
            }
        )
    trainings = recomendo_training.read_training_ledger(Ledger(recomendo_training.LEDGER))
    for account, entry in trainings.states.items():
        last = entry.data.get("last_call_at")
        pending = trainings.trainings.get(entry.data.get("pending") or "")
        found.training.append(
            {
                "account": account,
                "last_call_at": _iso(last),
                "next_allowed_at": _iso(float(last) + training_interval) if last is not None else "now",
                "pending_due_at": _iso(pending.data.get("due_at") if pending else None),
                "trained_until": _iso(entry.data.get("covered_until")),
            }
        )
    return found
