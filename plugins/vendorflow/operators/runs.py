"""What every operator needs from its Airflow run, written once: which days the run covers, the key
of the run, and republishing a dataset that is a view of a ledger.

Plain functions of the task context (a mapping), so they are unit-tested without Airflow.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from vendorflow.accounts import DEFAULT as DEFAULT_ACCOUNT
from vendorflow.errors import ConfigError, NotAvailable


def run_day(context: Mapping[str, Any]) -> date:
    """The day a run is about: its data interval's start (UTC), for every kind of run.

    Scheduled and backfill runs, and manual runs given a logical date (the UI's
    trigger form, the REST API, ``airflow dags test``), have a data interval:
    Airflow puts a manual run in the last interval complete before its logical
    date, so a trigger "now" processes yesterday. A run without one (asset-triggered,
    or manual through the REST API without a logical date) is treated the same
    way: the last interval of the DAG's schedule complete before the run was
    triggered, or the day before for a DAG without a cron schedule (whose manual
    runs get an empty interval at their logical date: the day before that).
    """
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and (end is None or end != start):
        return _utc_day(start)
    if start is not None:  # a DAG without a time schedule run by hand: its interval is the instant itself
        return last_complete_day(None, start)
    run = context.get("dag_run")
    moment = getattr(run, "run_after", None) or datetime.now(timezone.utc)
    timetable = getattr(context.get("dag"), "timetable", None)
    return last_complete_day(getattr(timetable, "expression", None), moment, getattr(timetable, "timezone", None))


def _utc_day(moment: datetime) -> date:
    return moment.astimezone(timezone.utc).date() if moment.tzinfo else moment.date()


def last_complete_day(expression: str | None, moment: datetime, tz: Any = None) -> date:
    """The start day of the last interval of a cron schedule that is complete at ``moment`` (the
    data interval Airflow gives a manual run at that moment); the day before without a schedule."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if not expression:
        return _utc_day(moment) - timedelta(days=1)
    from croniter import croniter

    local = moment.astimezone(ZoneInfo(str(tz))) if tz else moment
    end = local if croniter.match(expression, local) else croniter(expression, local).get_prev(datetime)
    return _utc_day(croniter(expression, end).get_prev(datetime))


def run_kind(context: Mapping[str, Any]) -> str:
    """``scheduled``, ``manual``, ``backfill`` or ``asset_triggered`` (Airflow's run type)."""
    run_type = getattr(context.get("dag_run"), "run_type", None)
    return str(getattr(run_type, "value", run_type) or "manual")


@contextmanager
def skipped_when_not_available() -> Iterator[None]:
    """The task is skipped, with the error's message, when the vendor no longer offers what it asked for."""
    try:
        yield
    except NotAvailable as exc:
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(str(exc)) from None


def accept_shrink(context: Mapping[str, Any]) -> bool:
    """The run's ``accept_shrink`` param: may a partition shrink past its dataset's limit this time?"""
    value = (context.get("params") or {}).get("accept_shrink", False)
    if not isinstance(value, bool):
        raise ConfigError(f"param accept_shrink must be true or false, not {value!r}")
    return value


def lookback_for(spec: Any, kind: str, logger: logging.Logger) -> int:
    """How many days before its own a run of ``spec`` re-extracts: none for a snapshot, none in a backfill
    run (each backfill run covers its own day), else the Variable ``lookback_days`` or the dataset's."""
    from vendorflow import settings

    if spec.snapshot:
        return 0
    days = settings.lookback_days(spec.key_name, spec.lookback_days)
    if days and kind == "backfill":
        logger.info("%s: a backfill run covers its own day only (no lookback of %d days)", spec.key_name, days)
        return 0
    return days


def check_snapshot(spec: Any, day: date, kind: str, logger: logging.Logger) -> None:
    """A snapshot is the vendor's list as it is when extracted: it is never written into a backfilled past
    day (the task is skipped, saying why), and into an old day by hand only with a warning."""
    if not spec.snapshot:
        return
    if kind == "backfill":
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(
            f"{spec.key_name} is a snapshot of the vendor's list as it is now: a backfill run for dt={day} "
            f"would store today's state as that day's, so it is skipped. Trigger the DAG by hand for that "
            f"day to publish today's list there anyway."
        )
    today = datetime.now(timezone.utc).date()
    if (today - day).days > 1:
        logger.warning(
            "%s dt=%s: a snapshot holds the vendor's list as it is now (%s), not as it was %d days ago; it is "
            "published for dt=%s because this run asked for that day",
            spec.key_name, day, today, (today - day).days, day,
        )  # fmt: skip


def parse_dates(explicit: Any) -> list[date] | None:
    """An explicit ``dt``: a date, a list of dates, or a list rendered by a template as its text
    (``"['2024-03-01', '2024-03-02']"``); ``None`` when nothing was given."""
    if isinstance(explicit, str) and explicit.strip() in ("", "None", "[]"):
        return None
    if explicit in (None, "", []):
        return None
    values = (
        explicit
        if isinstance(explicit, (list, tuple))
        else [v.strip(" '\"") for v in str(explicit).strip("[] ").split(",")]
    )
    try:
        return sorted({date.fromisoformat(str(v).strip()[:10]) for v in values})
    except ValueError:
        raise ConfigError(f"dt must be a date as YYYY-MM-DD or a list of them, not {explicit!r}") from None


def asset_dts(context: Mapping[str, Any], dataset: str, explicit: Any = None, account: str | None = None) -> list[date]:
    """Which partitions of ``dataset`` (of ``account``, when given) this run is about.

    An explicit ``dt`` (from the run's conf) wins; else every partition the
    triggering asset events of ``dataset`` published (several when the scheduler
    folded events into one run, or when a run's lookback republished changed
    days), for ``account`` only (none when the events were all another account's);
    else, in a run no event of ``dataset`` triggered, the run's day (:func:`run_day`).
    """
    chosen = parse_dates(explicit)
    if chosen:
        return chosen
    found: set[date] = set()
    triggered = False
    events = context.get("triggering_asset_events") or {}
    for key in list(events):
        for event in events[key]:
            name = getattr(getattr(event, "asset", None), "name", None)
            extra = getattr(event, "extra", None) or {}
            if name != dataset:
                continue
            triggered = True
            if account is not None and extra.get("account", DEFAULT_ACCOUNT) != account:
                continue
            # A run with a lookback publishes several days: every one of them is new to its consumers.
            published = [p.get("dt") for p in extra.get("partitions") or [] if isinstance(p, Mapping)]
            for dt in published if "partitions" in extra else [extra.get("dt")]:
                if dt:
                    found.add(date.fromisoformat(str(dt)[:10]))
    return sorted(found) if found or triggered else [run_day(context)]


def run_key(context: Mapping[str, Any]) -> str:
    """One key per DAG run: the run's retries and its return from deferral share it."""
    dag = context.get("dag")
    return f"{dag.dag_id}/{context['run_id']}" if dag is not None else str(context["run_id"])


def republish(
    dataset: str,
    days: Iterable[date],
    hook: Any,
    context: Mapping[str, Any],
    logger: logging.Logger,
    *,
    tolerate_errors: bool = False,
    account: str = DEFAULT_ACCOUNT,
) -> list[dict[str, Any]]:
    """Rebuild the partitions of ``days`` of a dataset that is a view of a ledger (its rows changed), and
    put them on the dataset's asset event.

    With ``tolerate_errors`` a partition that fails to publish is logged and skipped: the ledger is the
    record, and the next run republishes it (the caller's own outcome must not be hidden by it).
    """
    days = sorted(set(days))
    if not days:
        return []  # nothing changed: not even worth importing the pipeline (Great Expectations is slow to load)
    from vendorflow import datasets
    from vendorflow.assets import asset
    from vendorflow.pipeline.run import run_dataset

    spec = datasets.get(dataset)
    ti = context.get("ti")
    results = []
    for day in days:
        try:
            result = run_dataset(
                spec,
                hook=hook,
                dt=day,
                run_id=str(context.get("run_id")),
                try_number=getattr(ti, "try_number", None),
                logger=logger,
                account=account,
            )
        except Exception:
            if not tolerate_errors:
                raise
            logger.exception(
                "Publishing %s dt=%s failed; the ledger is intact and the next run republishes it", dataset, day
            )
            continue
        results.append(result.as_dict())
    if results:
        context["outlet_events"][asset(dataset)].extra = {
            "partitions": results,
            "account": account,
            "dt": results[-1]["dt"],
            "rows": sum(r["rows"] for r in results),
        }
    return results
