"""The day a run writes is its data interval's start, for every kind of run (``operators.runs.run_day``)."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

import pendulum
import pytest

from vendorflow.operators.runs import check_snapshot, last_complete_day, lookback_for, run_day, run_kind
from vendorflow.vendors.footprints.datasets import LEADS, OFFERS

UTC = timezone.utc
DAILY = SimpleNamespace(timetable=SimpleNamespace(expression="0 1 * * *", timezone="UTC"))


def test_scheduled_and_backfill_runs_write_their_interval_start() -> None:
    for run_type in ("scheduled", "backfill"):
        context = {
            "data_interval_start": datetime(2024, 3, 1, 1, tzinfo=UTC),
            "data_interval_end": datetime(2024, 3, 2, 1, tzinfo=UTC),
            "logical_date": datetime(2024, 3, 1, 1, tzinfo=UTC),
            "dag_run": SimpleNamespace(run_type=run_type),
            "dag": DAILY,
        }
        assert run_day(context) == date(2024, 3, 1) and run_kind(context) == run_type


def test_a_manual_run_now_writes_the_last_complete_day_not_today() -> None:
    # The UI and REST trigger with a logical date: Airflow's interval is the last complete one before it.
    context = {
        "data_interval_start": datetime(2026, 12, 4, 1, tzinfo=UTC),
        "data_interval_end": datetime(2026, 12, 5, 1, tzinfo=UTC),
        "logical_date": datetime(2026, 12, 5, 9, 30, tzinfo=UTC),
        "dag": DAILY,
    }
    assert run_day(context) == date(2026, 12, 4)
    # REST without a logical date: no interval at all; the same day is worked out from when it was triggered.
    rest = {"logical_date": None, "data_interval_start": None, "dag_run": SimpleNamespace(
        run_after=datetime(2026, 12, 5, 9, 30, tzinfo=UTC), run_type="manual"), "dag": DAILY}  # fmt: skip
    assert run_day(rest) == date(2026, 12, 4) and run_kind(rest) == "manual"


def test_asset_triggered_and_unscheduled_runs_write_the_day_before_they_ran() -> None:
    asset = {"dag_run": SimpleNamespace(run_after=datetime(2026, 12, 5, 0, 10, tzinfo=UTC), run_type="asset_triggered"),
             "dag": SimpleNamespace(timetable=SimpleNamespace())}  # fmt: skip
    assert run_day(asset) == date(2026, 12, 4) and run_kind(asset) == "asset_triggered"
    # A DAG without a time schedule triggered by hand: Airflow's interval is the instant itself.
    instant = datetime(2026, 12, 5, 9, tzinfo=UTC)
    assert run_day({"data_interval_start": instant, "data_interval_end": instant}) == date(2026, 12, 4)


@pytest.mark.parametrize("expression", ["0 1 * * *", "0 0 * * *", "30 1 * * *", "15 */6 * * *"])
def test_the_day_without_an_interval_is_the_one_airflow_gives_a_manual_run(expression: str) -> None:
    from airflow.timetables.interval import CronDataIntervalTimetable

    timetable = CronDataIntervalTimetable(expression, timezone=pendulum.UTC)
    rnd = random.Random(expression)
    for n in range(200):
        moment = pendulum.datetime(2026, 12, 1, tz="UTC").add(minutes=rnd.randrange(0, 60 * 24 * 5))
        if n % 10 == 0:
            moment = moment.replace(hour=1, minute=0)  # exactly on a schedule point
        inferred = timetable.infer_manual_data_interval(run_after=moment).start.date()
        assert last_complete_day(expression, moment, "UTC") == inferred, moment


def test_backfill_runs_have_no_lookback_and_skip_snapshots(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    log = logging.getLogger("test")
    assert lookback_for(LEADS, "scheduled", log) == 7 and lookback_for(LEADS, "backfill", log) == 0
    assert lookback_for(OFFERS, "scheduled", log) == 0
    from airflow.sdk.exceptions import AirflowSkipException

    with pytest.raises(AirflowSkipException, match="snapshot .* skipped"):
        check_snapshot(OFFERS, date(2024, 3, 1), "backfill", log)
    with caplog.at_level(logging.WARNING):
        check_snapshot(OFFERS, date(2024, 3, 1), "manual", log)  # published, with a warning
        check_snapshot(OFFERS, datetime.now(UTC).date() - timedelta(days=1), "scheduled", log)  # yesterday: fine
    assert len([r for r in caplog.records if "holds the vendor's list as it is now" in r.getMessage()]) == 1


def test_the_lookback_variable_is_read_per_dataset_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from vendorflow.errors import ConfigError

    log = logging.getLogger("test")
    monkeypatch.setenv("AIRFLOW_VAR_LOOKBACK_DAYS", '{"footprints/leads": 14}')
    assert lookback_for(LEADS, "scheduled", log) == 14
    monkeypatch.setenv("AIRFLOW_VAR_LOOKBACK_DAYS", '{"footprints/leads": -1}')
    with pytest.raises(ConfigError, match="lookback_days: footprints/leads must be a whole number"):
        lookback_for(LEADS, "scheduled", log)
    monkeypatch.setenv("AIRFLOW_VAR_LOOKBACK_DAYS", "7")
    with pytest.raises(ConfigError, match="must be a JSON object"):
        lookback_for(LEADS, "scheduled", log)
