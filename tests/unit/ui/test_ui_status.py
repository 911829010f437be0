"""The vendorflow page's content, from a data root and a ledger (no Airflow, no vendor)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vendorflow.datasets import declared
from vendorflow.ledger import Ledger
from vendorflow.pipeline import docs
from vendorflow.pipeline.storage import Lake
from vendorflow.ui.app import chart, render
from vendorflow.ui.status import actions, dataset_statuses, expected_newest

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)


def publish(lake: Lake, key: str, dt: str, rows: int, tmp_path: Path) -> None:
    staged = tmp_path / f"{key.replace('/', '.')}-{dt}.parquet"
    pq.write_table(pa.table({"id": list(range(rows))}), staged)
    lake.publish(staged, key, dt, {"dataset": key, "dt": dt, "rows": rows, "validation": "5/5 expectations passed"})


def test_every_declared_dataset_is_listed_with_its_days_freshness_validation_and_quarantine(
    tmp_path: Path, state_dir: Path
) -> None:
    lake = Lake(str(tmp_path / "data"))
    gx_root = tmp_path / "data" / "_gx"
    for dt, rows in [("2026-03-01", 10), ("2026-03-08", 30), ("2026-03-09", 20)]:
        publish(lake, "recreativ/campaign_statistics", dt, rows, tmp_path)
    publish(lake, "footprints/leads", "2026-03-05", 7, tmp_path)  # four days behind: late
    publish(lake, "footprints/leads", "2026-01-05", 7, tmp_path)  # outside the chart's 30 days
    docs.record(
        gx_root,
        dataset="recreativ/campaign_statistics",
        dt="2026-03-09",
        run="r1",
        result={"results": []},
        suite=[],
        success=True,
        evaluated=5,
        failures=[],
        facts={},
    )
    staged = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": [1]}), staged)
    lake.quarantine(
        staged,
        "footprints/leads",
        "2026-03-06",
        "run-x",
        {
            "results": [
                {
                    "success": False,
                    "expectation_config": {
                        "type": "expect_column_values_to_not_be_null",
                        "kwargs": {"column": "email"},
                    },
                    "result": {"unexpected_count": 3},
                }
            ]
        },
    )

    statuses = {s.dataset: s for s in dataset_statuses(str(tmp_path / "data"), gx_root, now=NOW)}
    assert set(statuses) == {s.key_name for s in declared()} and len(statuses) >= 18
    stats = statuses["recreativ/campaign_statistics"]
    assert stats.rows_by_day == {"2026-03-01": 10, "2026-03-08": 30, "2026-03-09": 20}
    assert stats.newest == "2026-03-09" and stats.newest_rows == 20 and not stats.late
    assert (
        stats.validation_passed
        and stats.docs_page
        and stats.docs_page.startswith("validations/recreativ.campaign_statistics/")
    )
    leads = statuses["footprints/leads"]
    assert leads.late and leads.rows_by_day == {"2026-03-05": 7}
    [batch] = leads.quarantined
    assert batch.dt == "2026-03-06" and "email" in batch.reasons[0] and "3 unexpected" in batch.reasons[0]
    assert statuses["allyy/models"].newest is None and statuses["allyy/models"].late

    page = render(list(statuses.values()), actions(), data_root=str(tmp_path / "data"), now=NOW)
    for dataset in statuses:
        assert f'data-dataset="{dataset}"' in page
    assert page.count("<svg") == len(statuses)
    assert f'href="docs/{stats.docs_page}"' in page and "expect_column_values_to_not_be_null" in page
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_the_freshness_rule_gives_the_scheduler_its_grace_period() -> None:
    assert expected_newest(datetime(2026, 3, 10, 5, 59, tzinfo=timezone.utc), grace_hours=6) == "2026-03-08"
    assert expected_newest(datetime(2026, 3, 10, 6, 0, tzinfo=timezone.utc), grace_hours=6) == "2026-03-09"


def test_the_chart_has_one_bar_per_published_day_scaled_to_the_busiest() -> None:
    svg = chart({"2026-03-09": 50, "2026-03-08": 100, "2026-03-07": 0}, NOW.date())
    assert svg.count("<rect") == 3 and 'height="26"' in svg and 'class="zero"' in svg
    assert "2026-03-08: 100 rows" in svg


def test_actions_read_from_the_ledger(state_dir: Path) -> None:
    assert actions().notes  # nothing ran yet: said, and no ledger is created by looking
    Ledger("algonomy_optouts").put("user-1", "accepted", {})
    Ledger("algonomy_optouts").put("user-2", "failed", {"message": "HTTP 400: unknown user"})
    Ledger("allyy_uploads").put("recreativ/offer_statistics/2026-03-09", "finished", {})
    Ledger("recomendo_training").put("state:acme", "ok", {"last_call_at": 1_000_000.0, "covered_until": 999_000.0})
    found = actions()
    assert found.optouts == {"requested": 0, "accepted": 1, "failed": 1}
    assert [o["user"] for o in found.optouts_open] == ["user-2"] and "unknown user" in found.optouts_open[0]["message"]
    assert found.uploads[0]["status"] == "finished"
    [training] = found.training
    assert training["account"] == "acme" and training["next_allowed_at"] == "1970-01-12T14:16:40+00:00"
