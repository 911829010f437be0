"""Runs through Airflow for a given day, the way a data engineer asks for them.

Airflow puts a manual run in the last data interval complete before its
logical date, and vendorflow writes the partition of that interval's start day;
so a run "for day D" is a run given a logical date just after D's interval ends.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pendulum


def logical_date_for(dag: Any, day: date) -> pendulum.DateTime:
    """The earliest whole hour whose manual run covers ``day`` (Airflow's data interval, read by vendorflow)."""
    from airflow.serialization.encoders import coerce_to_core_timetable

    from vendorflow.operators.runs import run_day

    timetable = coerce_to_core_timetable(dag.timetable)
    moment = pendulum.datetime(day.year, day.month, day.day, tz="UTC")
    for _ in range(24 * 8):
        moment = moment.add(hours=1)
        interval = timetable.infer_manual_data_interval(run_after=moment)
        context = {"data_interval_start": interval.start, "data_interval_end": interval.end} if interval else {}
        if interval is not None and run_day(context) == day:
            return moment
    raise AssertionError(f"{dag.dag_id}: no manual run within 8 days covers {day}")
