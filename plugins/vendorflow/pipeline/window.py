"""A daily run and its lookback: the run's own day and the days before it whose vendor data may have changed.

Each day is extracted, fingerprinted and compared with what is published
(:func:`vendorflow.pipeline.run.run_dataset` with ``skip_unchanged``): a
changed day is validated and republished atomically, an unchanged one is left
alone, and the run's own day is always validated and published. A day that
fails does not stop the others; the task fails at the end, naming every day
that failed. Data Docs listings are rebuilt once, at the end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from vendorflow.accounts import DEFAULT as DEFAULT_ACCOUNT
from vendorflow.datasets.spec import DatasetSpec
from vendorflow.errors import NotAvailable, VendorflowError
from vendorflow.pipeline.run import DatasetResult, account_label, run_dataset
from vendorflow.progress import counted


def window_days(day: date, lookback: int) -> list[date]:
    """``day`` and the ``lookback`` days before it, oldest first."""
    return [day - timedelta(days=n) for n in range(lookback, -1, -1)]


@dataclass
class WindowResult:
    dataset: str
    day: date
    results: list[DatasetResult] = field(default_factory=list)
    failures: dict[date, BaseException] = field(default_factory=dict)
    seconds: float = 0.0
    account: str = DEFAULT_ACCOUNT

    @property
    def label(self) -> str:
        return self.dataset + account_label(self.account)

    @property
    def changed(self) -> list[DatasetResult]:
        return [r for r in self.results if r.changed]

    @property
    def unchanged(self) -> list[DatasetResult]:
        return [r for r in self.results if not r.changed]

    def line(self) -> str:
        days = len(self.results) + len(self.failures)
        first = min([date.fromisoformat(r.dt) for r in self.results] + list(self.failures), default=self.day)
        requests = [r.requests for r in self.results if r.requests is not None]
        made = f"; {counted(sum(requests), 'requests')}" if requests else ""
        return (
            f"{self.label}: {counted(days, 'days')} (dt={first}..{self.day}) in {self.seconds:.1f} s: "
            f"{len(self.changed)} published ({counted(sum(r.rows for r in self.changed), 'rows')}), "
            f"{len(self.unchanged)} unchanged, {len(self.failures)} failed{made}"
        )

    def event(self) -> dict[str, Any]:
        """The asset event's extra: the run's own day as before, and every partition published."""
        own = next((r for r in self.results if r.dt == self.day.isoformat()), None)
        extra: dict[str, Any] = (
            dict(own.as_dict())
            if own
            else {"dataset": self.dataset, "dt": self.day.isoformat(), "account": self.account}
        )
        extra["partitions"] = [r.as_dict() for r in self.changed]
        extra["changed_days"] = [r.dt for r in self.changed if r.dt != self.day.isoformat()]
        extra["unchanged_days"] = [r.dt for r in self.unchanged]
        return extra


def run_window(
    spec: DatasetSpec,
    *,
    hook: Any,
    day: date,
    lookback: int,
    run_id: str,
    try_number: int | None = None,
    inputs: Mapping[str, Any] | None = None,
    logger: logging.Logger,
    accept_shrink: bool = False,
    progress_every: float = 10.0,
    account: str = DEFAULT_ACCOUNT,
) -> WindowResult:
    """Run ``spec`` for ``day`` and its ``lookback`` days (oldest first); raises at the end if a day failed."""
    from vendorflow.pipeline import docs

    days = window_days(day, lookback)
    outcome = WindowResult(spec.key_name, day, account=account)
    name = outcome.label
    started = time.monotonic()
    if lookback:
        logger.info("%s: dt=%s and %s of lookback (dt=%s..%s)", name, day,
                    counted(lookback, "days"), days[0], days[-2])  # fmt: skip
    with docs.deferred():
        for number, current in enumerate(days, start=1):
            try:
                result = run_dataset(
                    spec,
                    hook=hook,
                    dt=current,
                    run_id=run_id,
                    try_number=try_number,
                    inputs=inputs,
                    logger=logger,
                    accept_shrink=accept_shrink,
                    skip_unchanged=current != day,
                    progress_every=progress_every,
                    account=account,
                )
            except NotAvailable:
                raise  # the vendor no longer offers it: the task is skipped, nothing to gather
            except Exception as exc:  # the other days still run; the task fails at the end
                logger.error("%s dt=%s failed: %s", name, current, exc)
                outcome.failures[current] = exc
                continue
            outcome.results.append(result)
            if lookback:
                logger.info("%s: day %d of %d done (dt=%s %s; %d changed so far)", name, number, len(days),
                            current, "changed" if result.changed else "unchanged", len(outcome.changed))  # fmt: skip
    outcome.seconds = time.monotonic() - started
    logger.info("%s", outcome.line())
    raise_failures(outcome.failures, name)
    return outcome


def raise_failures(failures: Mapping[date, BaseException], dataset: str) -> None:
    """Nothing when no day failed; a day's own error when one did; one error naming them all when several did."""
    if not failures:
        return
    if len(failures) == 1:
        raise next(iter(failures.values()))
    listed = "\n".join(f"  - dt={d}: {e}" for d, e in sorted(failures.items()))
    error_types: Sequence[type] = sorted({type(e) for e in failures.values()}, key=lambda t: t.__name__)
    cls = error_types[0] if len(error_types) == 1 and issubclass(error_types[0], VendorflowError) else VendorflowError
    try:
        error = cls(f"{dataset}: {len(failures)} days failed:\n{listed}")
    except TypeError:  # an error class with its own arguments
        error = VendorflowError(f"{dataset}: {len(failures)} days failed:\n{listed}")
    raise error
