"""Recomendo datasets: the month's usage report, and two records of what the pipeline did
(events sent, training requests) published from the ledger so analysts can read them.

``recomendo/events_sent`` and ``recomendo/training_requests`` are views of the
durable ledgers (:mod:`~vendorflow.vendors.recomendo.events`,
:mod:`~vendorflow.vendors.recomendo.training`): a partition is
rebuilt from the ledger and replaced as a whole, so a rerun never duplicates a
row and always shows the latest state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from vendorflow.accounts import DEFAULT as DEFAULT_ACCOUNT
from vendorflow.datasets.spec import Column, DatasetSpec, Expect, ExtractContext, Records, ledger_pages, pages_of
from vendorflow.errors import NotAvailable, VendorAPIError, VendorResponseError
from vendorflow.vendors.recomendo import events, training

if TYPE_CHECKING:
    from vendorflow.vendors.recomendo.hook import RecomendoHook


def quota_status(
    usages: list[dict[str, Any]], warning_share: float, monthly_quota: int | None = None
) -> dict[str, Any]:
    """How much of the month's quota is left, from the report rows (the last row is the latest day).

    The report does not state the quota itself; it is the remaining quota plus
    everything used since the 1st (the month resets on the 1st).
    """
    rows = [u for u in usages if isinstance(u, dict)]
    if not rows:
        return {
            "remaining_quota": None,
            "monthly_quota": monthly_quota,
            "remaining_share": None,
            "quota_warning": False,
        }
    latest = max(rows, key=lambda u: str(u.get("date")))
    remaining = int(latest.get("remainingQuota") or 0)
    total = monthly_quota or remaining + sum(int(u.get("userQuota") or 0) for u in rows)
    share = remaining / total if total else 0.0
    return {
        "remaining_quota": remaining,
        "monthly_quota": total,
        "remaining_share": round(share, 6),
        "quota_warning": share < warning_share,
        "quota_warning_share": warning_share,
        "as_of": str(latest.get("date")),
    }


def report_start(report: dict[str, Any]) -> date | None:
    """The first day a usage report covers: its ``startDate``, else its earliest row's date."""
    dates = sorted(str(u.get("date")) for u in report["usages"] if isinstance(u, dict))
    for value in [report.get("startDate"), *dates]:
        try:
            return date.fromisoformat(str(value)[:10])
        except ValueError:
            continue
    return None


def is_month_end(day: date) -> bool:
    return (day + timedelta(days=1)).day == 1


def month_is_over(report: dict[str, Any], day: date) -> bool:
    """Whether ``report`` is of a month after ``day``'s (the vendor rolled over: ``day`` is out of reach)."""
    start = report_start(report)
    return start is not None and start > day


@dataclass
class MonthEnd:
    """What the month-end capture saw: the last report that still held the month, when it was read,
    and the first report of the next month and when it was seen (``None``: not within the wait)."""

    report: dict[str, Any] | None
    read_at: float | None
    rollover_seen_at: float | None
    reads: int
    next_month: dict[str, Any] | None = None

    def facts(self) -> dict[str, Any]:
        def instant(epoch: float | None) -> str | None:
            return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc).isoformat()

        gap = None if self.read_at is None or self.rollover_seen_at is None else self.rollover_seen_at - self.read_at
        return {
            "month_end_read_at": instant(self.read_at),
            "rollover_seen_at": instant(self.rollover_seen_at),
            # the most usage of the month's last moments the capture can have missed: after its last read,
            # before the vendor's rollover
            "month_end_gap_seconds": None if gap is None else round(gap, 3),
            "month_end_reads": self.reads,
        }


def last_report_of_month(
    read: Callable[[], dict[str, Any]],
    day: date,
    *,
    poll_seconds: float,
    wait_seconds: float,
    log: logging.Logger,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> MonthEnd:
    """Read the usage report every ``poll_seconds`` until it holds the next month (the vendor's rollover:
    the API returns the current month only) or ``wait_seconds`` have passed; keep the last read of
    ``day``'s month. That read misses at most the usage between it and the rollover."""
    first = clock()
    last: dict[str, Any] | None = None
    read_at: float | None = None
    reads = 0
    said = first
    while True:
        try:
            report = read()
        except (VendorAPIError, VendorResponseError) as exc:
            if last is None or clock() - first >= wait_seconds:
                raise
            # one failed read (its retries spent) must not lose the month: keep the last good one, read again
            log.warning("recomendo/usage dt=%s: a read failed (%s); reading again in %g s", day, exc, poll_seconds)
            sleep(poll_seconds)
            continue
        now = clock()
        reads += 1
        if month_is_over(report, day):
            return MonthEnd(last, read_at, now, reads, next_month=report)
        last, read_at = report, now
        if now - first >= wait_seconds:
            return MonthEnd(last, read_at, None, reads)
        if now - said >= 60 or reads == 1:
            said = now
            log.info(
                "recomendo/usage dt=%s: the report still holds %s (read %d, until %s); waiting for the month "
                "to roll over (reading every %g s, for at most %d s more)",
                day, report.get("startDate"), reads, report.get("endDate"), poll_seconds,
                max(0, round(wait_seconds - (now - first))),
            )  # fmt: skip
        sleep(poll_seconds)


def month_over(day: date, report: dict[str, Any]) -> NotAvailable:
    return NotAvailable(
        f"recomendo/usage dt={day}: GET /v1/usage now returns {report.get('startDate')} to "
        f"{report.get('endDate')}, and Recomendo returns the current month only: the month of {day} is over "
        f"and can no longer be read. A month's last report is captured just before its rollover by the DAG "
        f"recomendo_usage_month_end; a partition already published for dt={day} is left as it is."
    )


def _usage_report(ctx: ExtractContext) -> dict[str, Any]:
    """The report this run publishes: read once, or, for the month-end capture, the last read before the
    month rolls over."""
    hook: RecomendoHook = ctx.hook
    day = ctx.dt
    if not ctx.inputs.get("until_rollover"):
        report = hook.usage()
        if month_is_over(report, day):
            raise month_over(day, report)
        return report
    if not is_month_end(day):
        raise NotAvailable(
            f"recomendo/usage dt={day}: recomendo_usage_month_end captures the last day of a month, and {day} is "
            f"not one; recomendo_usage publishes the other days after they end."
        )
    end = last_report_of_month(
        hook.usage, day, poll_seconds=hook.usage_poll_seconds, wait_seconds=hook.month_end_wait_seconds, log=ctx.log
    )
    if end.report is None:  # the first read already held the next month
        raise month_over(day, end.next_month or {})
    ctx.facts.update(end.facts())
    if end.rollover_seen_at is None:
        ctx.log.warning(
            "recomendo/usage dt=%s: the month did not roll over within %g s (extra month_end_wait_seconds); the "
            "last report read is published, and the day's usage after it is missing. recomendo_usage's run after "
            "midnight replaces it if Recomendo still returns this month then.",
            day, hook.month_end_wait_seconds,
        )  # fmt: skip
    else:
        ctx.log.info(
            "recomendo/usage dt=%s: the month rolled over; publishing the last report read before it "
            "(%d reads, at most %.1f s of usage before the rollover unseen)",
            day, end.reads, end.rollover_seen_at - (end.read_at or end.rollover_seen_at),
        )  # fmt: skip
    return end.report


def extract_usage(ctx: ExtractContext) -> Iterator[Records]:
    hook: RecomendoHook = ctx.hook
    report = _usage_report(ctx)
    plan = report.get("usagePlan")
    source = "GET /v1/usage"
    status = quota_status(report["usages"], hook.quota_warning_share, ctx.inputs.get("monthly_quota"))
    ctx.facts.update(status)
    if status["quota_warning"]:
        ctx.log.warning(
            "Recomendo quota low: %s of %s requests left this month (%.1f%%, under the %.0f%% warning share)",
            f"{status['remaining_quota']:,}",
            f"{status['monthly_quota']:,}",
            status["remaining_share"] * 100,
            status["quota_warning_share"] * 100,
        )
    else:
        ctx.log.info("Recomendo quota: %s of %s left this month", status["remaining_quota"], status["monthly_quota"])
    yield Records(({**u, "usagePlan": plan} if isinstance(u, dict) else u for u in report["usages"]), source)


def extract_events_sent(ctx: ExtractContext) -> Iterator[Records]:
    day = ctx.dt.isoformat()

    def row(entry: Any) -> dict[str, Any] | None:
        data = entry.data
        if data.get("dt") != day or entry.status not in events.FINAL:
            return None  # "sending": claimed by a run, outcome not known yet
        if data.get("account", DEFAULT_ACCOUNT) != ctx.account:
            return None  # another Recomendo account's event (records from before accounts are the default's)
        event = data.get("event") or {}
        return {
            "event_key": entry.key,
            "lead_id": data.get("lead_id"),
            "client_id": data.get("client_id"),
            "event": event.get("event"),
            "entity_type": event.get("entityType"),
            "entity_id": event.get("entityId"),
            "target_entity_type": event.get("targetEntityType"),
            "target_entity_id": event.get("targetEntityId"),
            "event_time": event.get("eventTime"),
            "properties": event.get("properties"),
            "status": entry.status,
            "event_id": data.get("event_id"),
            "message": data.get("message"),
            "sent_at": data.get("sent_at"),
            "run_id": data.get("run_id"),
        }

    yield from ledger_pages(events.LEDGER, row)


def extract_training_requests(ctx: ExtractContext) -> Iterator[Records]:
    from vendorflow.ledger import Ledger

    day = ctx.dt.isoformat()
    ledger = training.read_training_ledger(Ledger(training.LEDGER))

    def instant(epoch: Any) -> str | None:
        return datetime.fromtimestamp(float(epoch), timezone.utc).isoformat() if epoch is not None else None

    def row(entry: Any) -> dict[str, Any]:
        data = entry.data
        found = ledger.trainings.get(data["training_id"]) if data.get("training_id") else None
        t = found.data if found else {}
        status = found.status if found else (training.SKIPPED if entry.status == training.SKIPPED else "unknown")
        return {
            "request_key": data["ask_key"],
            "training_id": data["training_id"],
            "asked_at": instant(data["asked_at"]),
            "run_id": data.get("run_id"),
            "leads_dts": data.get("dts"),
            "coalesced": bool(t.get("first_ask") and t.get("first_ask") != data.get("ask_key")),
            "training_status": status,
            "due_at": instant(t.get("due_at")),
            "sent_at": instant(t.get("call_at")),
            "answer": t.get("message") or data.get("message"),
        }

    asks = (
        entry
        for entry in ledger.asks
        if (instant(entry.data["asked_at"]) or "")[:10] == day
        and entry.data.get("account", DEFAULT_ACCOUNT) == ctx.account
    )
    yield from pages_of((row(entry) for entry in asks), f"ledger {training.LEDGER}")


USAGE = DatasetSpec(
    vendor="recomendo",
    name="usage",
    notes=(
        "snapshot: the month's report (`GET /v1/usage`, from the 1st to the day it was read) as returned when the "
        "run read it; a month's last day: the last report read before the month rolled over "
        "(`recomendo_usage_month_end`)"
    ),
    description="This month's daily usage report as returned on the run's day (GET /v1/usage).",
    snapshot=True,
    columns=(
        Column("date", "date", required=True, nullable=False),
        Column(
            "user_quota",
            "int64",
            source="userQuota",
            required=True,
            nullable=False,
            description="requests used that day",
        ),
        Column(
            "remaining_quota",
            "int64",
            source="remainingQuota",
            required=True,
            nullable=False,
            description="left for the month after that day",
        ),
        Column("usage_plan", "string", source="usagePlan"),
    ),
    key=("date",),
    expectations=(
        Expect("ExpectColumnValuesToBeBetween", column="user_quota", min_value=0),
        Expect("ExpectColumnValuesToBeBetween", column="remaining_quota", min_value=0),
        Expect("ExpectTableRowCountToBeBetween", min_value=1, max_value=31),
    ),
    extract=extract_usage,
)

EVENTS_SENT = DatasetSpec(
    vendor="recomendo",
    name="events_sent",
    notes=(
        "partition = the leads' `dt`; `status` `accepted` (with Recomendo's `event_id`), `rejected` (the vendor's "
        "400 message) or `skipped` (the lead lacks an id)"
    ),
    description=(
        "Every Recomendo event built from the footprints/leads partition dt: accepted (with its eventId), "
        "rejected or skipped."
    ),
    columns=(
        Column(
            "event_key",
            "string",
            required=True,
            nullable=False,
            description="lead id and event kind: the idempotency key",
        ),
        Column("lead_id", "string"),
        Column("client_id", "string"),
        Column("event", "string", nullable=False),
        Column("entity_type", "string", nullable=False),
        Column("entity_id", "string"),
        Column("target_entity_type", "string"),
        Column("target_entity_id", "string"),
        Column("event_time", "timestamp"),
        Column("properties", "json"),
        Column("status", "string", nullable=False, description="accepted | rejected | skipped"),
        Column("event_id", "string", description="Recomendo's eventId, for accepted events"),
        Column("message", "string", description="why an event was rejected or skipped"),
        Column("sent_at", "timestamp"),
        Column("run_id", "string"),
    ),
    key=("event_key",),
    expectations=(
        Expect("ExpectColumnValuesToBeInSet", column="status", value_set=list(events.FINAL)),
        Expect("ExpectColumnValuesToBeUnique", column="event_id"),
    ),
    extract=extract_events_sent,
)

TRAINING_REQUESTS = DatasetSpec(
    vendor="recomendo",
    name="training_requests",
    notes=(
        "partition = the day the request was made; one row per asking run; rows sharing a `training_id` were "
        "coalesced into one `/v1/train` call"
    ),
    description="Every training request made on day dt (one row per asking run) and the /v1/train call it became.",
    columns=(
        Column("request_key", "string", required=True, nullable=False),
        Column(
            "training_id",
            "string",
            description="requests that share it were coalesced into one call; empty when skipped",
        ),
        Column("asked_at", "timestamp", nullable=False),
        Column("run_id", "string"),
        Column("leads_dts", "json"),
        Column("coalesced", "bool"),
        Column(
            "training_status",
            "string",
            nullable=False,
            description=(
                "pending | sending | sent | failed | refused, or skipped (no event accepted since the last training)"
            ),
        ),
        Column("due_at", "timestamp", description="when the 30-minute window allowed the call"),
        Column("sent_at", "timestamp", description="when /v1/train was called"),
        Column("answer", "string"),
    ),
    key=("request_key",),
    expectations=(
        Expect(
            "ExpectColumnValuesToBeInSet",
            column="training_status",
            value_set=[*training.TRAINING_STATUSES, training.SKIPPED, "unknown"],
        ),
    ),
    extract=extract_training_requests,
)

DATASETS = (USAGE, EVENTS_SENT, TRAINING_REQUESTS)
