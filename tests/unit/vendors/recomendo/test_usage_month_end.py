"""The month's last day of Recomendo usage: read until the vendor rolls over, keep the last read of the month.

A fake clock and a scripted report sequence stand in for time and the vendor; nothing sleeps.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import pytest

from vendorflow.datasets.spec import ExtractContext
from vendorflow.errors import NotAvailable, VendorAPIError
from vendorflow.progress import Progress
from vendorflow.vendors.recomendo.datasets import (
    extract_usage,
    is_month_end,
    last_report_of_month,
    report_start,
)

LOG = logging.getLogger("test")
LAST = date(2024, 3, 31)


def report(start: str, end: str, last_use: int = 0) -> dict[str, Any]:
    return {
        "usagePlan": "PRO",
        "startDate": start,
        "endDate": end,
        "usages": [
            {"date": start, "userQuota": 10, "remainingQuota": 990},
            {"date": end, "userQuota": last_use, "remainingQuota": 990 - last_use},
        ],
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(*answers: Any) -> Any:
    queue = list(answers)
    calls: list[int] = []

    def read() -> dict[str, Any]:
        calls.append(1)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    read.calls = calls  # type: ignore[attr-defined]
    return read


def test_the_month_end_and_report_start() -> None:
    assert is_month_end(date(2024, 2, 29)) and is_month_end(date(2024, 12, 31))
    assert not is_month_end(date(2024, 2, 28)) and not is_month_end(date(2024, 3, 30))
    assert report_start(report("2024-03-01", "2024-03-31")) == date(2024, 3, 1)
    # no startDate: the earliest row tells
    assert report_start({"usages": [{"date": "2024-03-02"}, {"date": "2024-03-01"}]}) == date(2024, 3, 1)
    assert report_start({"startDate": "?", "usages": []}) is None


def test_the_last_read_before_the_rollover_is_kept_with_how_late_it_was() -> None:
    clock = Clock()
    read = scripted(
        report("2024-03-01", "2024-03-31", 100),
        report("2024-03-01", "2024-03-31", 150),
        report("2024-03-01", "2024-03-31", 170),
        report("2024-04-01", "2024-04-01"),
        report("2024-04-01", "2024-04-01"),  # never read: the rollover was seen
    )
    end = last_report_of_month(read, LAST, poll_seconds=2, wait_seconds=900, log=LOG, clock=clock, sleep=clock.sleep)
    assert end.report is not None and end.report["usages"][-1]["userQuota"] == 170
    assert end.reads == 4 and len(read.calls) == 4 and clock.sleeps == [2, 2, 2]
    assert end.read_at == 1_004.0 and end.rollover_seen_at == 1_006.0
    facts = end.facts()
    assert facts["month_end_gap_seconds"] == 2.0 and facts["month_end_reads"] == 4
    assert facts["month_end_read_at"].startswith("1970-01-01T00:16:44")


def test_without_a_rollover_the_wait_ends_and_the_last_read_is_kept() -> None:
    clock = Clock()
    read = scripted(*[report("2024-03-01", "2024-03-31", n) for n in range(10)])
    end = last_report_of_month(read, LAST, poll_seconds=5, wait_seconds=12, log=LOG, clock=clock, sleep=clock.sleep)
    # reads at 0, 5, 10 and 15 s: the one at 15 s is past the wait
    assert end.reads == 4 and end.rollover_seen_at is None and end.report["usages"][-1]["userQuota"] == 3
    assert end.facts()["month_end_gap_seconds"] is None


def test_a_failed_read_after_a_good_one_is_read_again_but_a_first_failure_is_raised() -> None:
    clock = Clock()
    failed = VendorAPIError("Recomendo", "GET /v1/usage", 503, "down")
    read = scripted(
        report("2024-03-01", "2024-03-31", 1), failed, report("2024-03-01", "2024-03-31", 2), report("2024-04-01", "x")
    )
    end = last_report_of_month(read, LAST, poll_seconds=1, wait_seconds=60, log=LOG, clock=clock, sleep=clock.sleep)
    assert end.report["usages"][-1]["userQuota"] == 2 and end.rollover_seen_at is not None
    with pytest.raises(VendorAPIError):
        last_report_of_month(scripted(failed), LAST, poll_seconds=1, wait_seconds=60, log=LOG, clock=clock)


class FakeHook:
    vendor_name = "Recomendo"
    quota_warning_share = 0.1
    usage_poll_seconds = 0.0
    month_end_wait_seconds = 0.0

    def __init__(self, *reports: dict[str, Any]) -> None:
        self.usage = scripted(*reports)


def rows(hook: FakeHook, day: date, **inputs: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    ctx = ExtractContext(hook=hook, dt=day, inputs=inputs, progress=Progress("recomendo/usage", log=LOG), log=LOG)
    return [r for page in extract_usage(ctx) for r in page.records], ctx.facts


def test_a_daily_run_after_its_month_is_over_is_not_available_instead_of_publishing_the_next_month() -> None:
    hook = FakeHook(report("2024-04-01", "2024-04-01"))
    with pytest.raises(NotAvailable) as caught:
        rows(hook, LAST)
    text = str(caught.value)
    assert "recomendo/usage dt=2024-03-31" in text and "2024-04-01" in text
    assert "recomendo_usage_month_end" in text and "left as it is" in text
    # a day of the month the report holds is published as before
    published, facts = rows(FakeHook(report("2024-03-01", "2024-03-05", 7)), date(2024, 3, 4))
    assert [r["userQuota"] for r in published] == [10, 7] and "month_end_reads" not in facts


def test_the_month_end_capture_publishes_the_last_read_of_the_month_and_says_how_late_it_was() -> None:
    hook = FakeHook(
        report("2024-03-01", "2024-03-31", 5), report("2024-03-01", "2024-03-31", 9), report("2024-04-01", "y")
    )
    hook.month_end_wait_seconds = 600.0
    published, facts = rows(hook, LAST, until_rollover=True)
    assert [r["userQuota"] for r in published] == [10, 9] and {r["usagePlan"] for r in published} == {"PRO"}
    assert facts["month_end_reads"] == 3 and facts["rollover_seen_at"] is not None


def test_the_month_end_capture_skips_other_days_and_a_month_already_over() -> None:
    with pytest.raises(NotAvailable, match="2024-03-30 is not one"):
        rows(FakeHook(), date(2024, 3, 30), until_rollover=True)
    over = FakeHook(report("2024-04-01", "2024-04-01"), report("2024-04-01", "2024-04-01"))
    with pytest.raises(NotAvailable, match="the month of 2024-03-31 is over"):
        rows(over, LAST, until_rollover=True)
