"""Every DAG file: imports cleanly, has tags, retries and docs, and imports nothing heavy at parse time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((PROJECT_ROOT / "dags").glob("*.py"))
HEAVY = ("pandas", "pyarrow", "great_expectations", "numpy", "duckdb")


@pytest.fixture(scope="module")
def bag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT_ROOT / "dags"))


def test_there_are_dag_files() -> None:
    assert DAG_FILES, "no DAG files found under dags/"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_without_errors(bag, path: Path) -> None:  # type: ignore[no-untyped-def]
    errors = {k: v for k, v in bag.import_errors.items() if Path(k).name == path.name}
    assert not errors, errors


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_defines_the_dag_it_is_named_after(bag, path: Path) -> None:  # type: ignore[no-untyped-def]
    assert path.stem in bag.dag_ids, f"{path.name} should define dag_id {path.stem!r}; found {sorted(bag.dag_ids)}"


def test_every_dag_has_tags_retries_and_docs(bag) -> None:  # type: ignore[no-untyped-def]
    for dag_id in bag.dag_ids:
        dag = bag.dags[dag_id]
        assert dag.tags, f"{dag_id} has no tags"
        assert "vendorflow" in dag.tags, f"{dag_id} is not tagged 'vendorflow'"
        assert dag.doc_md and len(dag.doc_md) > 80, f"{dag_id} has no real doc_md"
        for task in dag.tasks:
            assert task.retries and task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"
            assert task.execution_timeout is not None, f"{dag_id}.{task.task_id} has no execution_timeout"


def test_the_task_timeout_is_configurable_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from vendorflow.dag_defaults import default_args, task_timeout

    assert default_args()["execution_timeout"] == timedelta(hours=2)
    monkeypatch.setenv("VENDORFLOW_TASK_TIMEOUT_MINUTES", "7.5")
    assert task_timeout() == timedelta(minutes=7, seconds=30)
    monkeypatch.setenv("VENDORFLOW_TASK_TIMEOUT_MINUTES", "0")
    with pytest.raises(ValueError, match="VENDORFLOW_TASK_TIMEOUT_MINUTES must be a positive number"):
        task_timeout()


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parsing_imports_no_heavy_library(path: Path) -> None:
    """Parse the file in a fresh interpreter after importing airflow.sdk (parse *time* is measured by
    bench/dag_parse.py)."""
    probe = f"""
import importlib.util, json, sys, time
import airflow.sdk  # the DAG files' own import; its cost is Airflow's, not ours
before = set(sys.modules)
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", {str(path)!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
seconds = time.perf_counter() - start
heavy = sorted({{m.split(".")[0] for m in set(sys.modules) - before}} & set({HEAVY!r}))
print(json.dumps({{"seconds": seconds, "heavy": heavy}}))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "plugins")])}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == [], f"parsing {path.name} imported {result['heavy']}"


def test_the_month_end_usage_run_is_on_each_months_last_day_before_midnight_and_writes_that_day(bag) -> None:  # type: ignore[no-untyped-def]
    import pendulum
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import DataInterval, TimeRestriction

    from vendorflow.operators.runs import run_day

    timetable = coerce_to_core_timetable(bag.dags["recomendo_usage_month_end"].timetable)
    restriction = TimeRestriction(earliest=pendulum.datetime(2024, 1, 1, tz="UTC"), latest=None, catchup=True)
    last: DataInterval | None = None
    runs = []
    for _ in range(4):
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        assert info is not None and info.data_interval is not None
        last = info.data_interval
        day = run_day({"data_interval_start": last.start, "data_interval_end": last.end})
        runs.append((info.run_after.isoformat(), day.isoformat()))
    assert runs == [
        ("2024-01-31T23:58:00+00:00", "2024-01-31"),
        ("2024-02-29T23:58:00+00:00", "2024-02-29"),
        ("2024-03-31T23:58:00+00:00", "2024-03-31"),
        ("2024-04-30T23:58:00+00:00", "2024-04-30"),
    ]
