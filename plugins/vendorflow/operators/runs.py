"""What every operator needs from its Airflow run, written once: which days the run covers, the key
of the run, and republishing a dataset that is a view of a ledger.

Plain functions of the task context (a mapping), so they are unit-tested without Airflow.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timezone
from typing import Any

from vendorflow.errors import ConfigError


def run_day(context: Mapping[str, Any]) -> date:
    """The run's logical date; a run without one (asset-triggered, or manual without a date) counts
    on the day it was triggered."""
    moment = context.get("logical_date")
    if moment is None:
        run = context.get("dag_run")
        moment = getattr(run, "run_after", None) or datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).date() if moment.tzinfo else moment.date()


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


def asset_dts(context: Mapping[str, Any], dataset: str, explicit: Any = None) -> list[date]:
    """Which partitions of ``dataset`` this run is about.

    An explicit ``dt`` (from the run's conf) wins; else the ``dt`` of every
    triggering asset event of ``dataset`` (several when the scheduler folded
    events into one run); else the run's day (:func:`run_day`).
    """
    chosen = parse_dates(explicit)
    if chosen:
        return chosen
    found: set[date] = set()
    events = context.get("triggering_asset_events") or {}
    for key in list(events):
        for event in events[key]:
            name = getattr(getattr(event, "asset", None), "name", None)
            extra = getattr(event, "extra", None) or {}
            if name == dataset and extra.get("dt"):
                found.add(date.fromisoformat(str(extra["dt"])[:10]))
    return sorted(found) if found else [run_day(context)]


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
            "dt": results[-1]["dt"],
            "rows": sum(r["rows"] for r in results),
        }
    return results
