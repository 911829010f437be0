"""algonomy_optout end to end through Airflow (``dag.test``), checked against the sandbox's own record.

The oracle is independent of the code under test: the expected ids are
written out by hand from the inputs, and what Algonomy did is read from the
sandbox's record of opt-outs (``/_sandbox/algonomy/optouts``) and its request log.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests

from include.sandbox.control import Sandbox
from tests.dagruns import logical_date_for

pytestmark = pytest.mark.e2e
DAY = date(2024, 3, 1)


@pytest.fixture
def algonomy(sandbox: Sandbox, connect, data_root: Path, state_dir: Path, airflow_db: None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    # The rate is not the point here: test_algonomy_hook and the benchmark cover the 100/s budget.
    sandbox.configure("algonomy", rate_limit=2000)
    return connect("algonomy", requests_per_second=1000, backoff_seconds=0.01, max_backoff_seconds=0.05)


def the_dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["algonomy_optout"]
    for task in dag.tasks:
        task.retries = 0  # a failure should fail the run now, not in two minutes
    return dag


def run_dag(conf: dict[str, Any] | None = None) -> Any:
    dag = the_dag()
    return dag.test(logical_date=logical_date_for(dag, DAY), run_conf=conf)


def task_states(run: Any) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def optouts(sandbox: Sandbox) -> dict[str, Any]:
    response = requests.get(sandbox.url("/_sandbox/algonomy/optouts"), timeout=10)
    response.raise_for_status()
    return response.json()


def puts(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [r for r in sandbox.requests("algonomy") if r["method"] == "PUT"]


def published(data_root: Path) -> dict[str, tuple]:
    rows = duckdb.sql(
        "select user_id, status, source, http_status, answer, attempts, accepted_at is not null, dt "
        f"from read_parquet('{data_root}/algonomy/optouts/*/*.parquet', hive_partitioning=true)"
    ).fetchall()
    assert len(rows) == len({r[0] for r in rows}), "one row per user id"
    return {r[0]: r[1:] for r in rows}


def test_trigger_and_inbox_then_rerun_sends_each_id_until_accepted_and_never_again(
    sandbox: Sandbox, algonomy: dict[str, Any], data_root: Path
) -> None:
    inbox = data_root / "algonomy" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "crm-export.csv").write_text("user_id,reason\ncsv-1,gdpr\n csv-2 ,gdpr\nparam-2,again\n")
    (inbox / "support.txt").write_text("txt-1\n\ntxt-2\r\ntxt-1\n")
    (inbox / "broken.txt").write_text("ok-in-broken-file\nnot ok\n")
    (inbox / "upload.txt.part").write_text("still-being-written\n")
    api_key = algonomy["extra"]["api_key"]
    sandbox.fault(
        "algonomy", "status", status=400, method="PUT", path=f"/profile-command/v1/{api_key}/optOut/txt-2", count=1
    )
    conf = {"user_ids": ["param-1", "  param-2 ", "", "param-1", "user@example.com"]}

    # First run: everything valid goes out; txt-2 is refused once; broken.txt is refused whole.
    first = run_dag(conf)
    assert first.state == "failed"
    assert task_states(first) == {"record_requests": "success", "send_opt_outs": "failed"}
    sent_once = {"param-1", "param-2", "user@example.com", "csv-1", "csv-2", "txt-1"}
    record = optouts(sandbox)
    assert set(record["users"]) == sent_once
    assert all(r["count"] == 1 and r["api_keys"] == [api_key] for r in record["users"].values())
    rows = published(data_root)
    assert rows["txt-2"][0] == "failed" and rows["txt-2"][4] == 1
    assert "ok-in-broken-file" not in rows, "nothing of a refused file is recorded or sent"
    done = {p.name for p in (inbox / "done").rglob("*") if p.is_file()}
    assert done == {"crm-export.csv", "support.txt"}
    rejected = {p.name: p for p in (inbox / "rejected").rglob("*") if p.is_file()}
    assert set(rejected) == {"broken.txt", "broken.txt.errors.txt"}
    assert "line 2: 'not ok' contains ' '" in rejected["broken.txt.errors.txt"].read_text()
    assert (inbox / "upload.txt.part").exists(), "a file still being written is left alone"

    # Rerun of the same date with the same trigger: only what is not accepted goes out.
    before = len(puts(sandbox))
    second = run_dag(conf)
    assert second.state == "success"
    assert [r["path"].rsplit("/", 1)[-1] for r in puts(sandbox)[before:]] == ["txt-2"]
    record = optouts(sandbox)
    assert set(record["users"]) == sent_once | {"txt-2"}
    assert record["repeated"] == []

    rows = published(data_root)
    expected = {
        uid: ("accepted", "params", 200, "{}", 1, True, DAY) for uid in ("param-1", "param-2", "user@example.com")
    }
    expected |= {uid: ("accepted", "inbox:crm-export.csv", 200, "{}", 1, True, DAY) for uid in ("csv-1", "csv-2")}
    expected |= {"txt-1": ("accepted", "inbox:support.txt", 200, "{}", 1, True, DAY)}
    expected |= {"txt-2": ("accepted", "inbox:support.txt", 200, "{}", 2, True, DAY)}
    assert rows == expected


def test_ui_trigger_with_bad_ids_is_refused_before_anything_is_sent(
    sandbox: Sandbox, algonomy: dict[str, Any], data_root: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    conf = {"user_ids": ["good-1", "two words", "a/b", " ", "x" * 300, "good-2"]}
    run = run_dag(conf)
    assert run.state == "failed"
    assert task_states(run) == {"record_requests": "failed", "send_opt_outs": "upstream_failed"}
    output = capfd.readouterr()
    text = output.out + output.err
    assert "param user_ids: 3 user id(s) refused, nothing was sent" in text
    assert "item 2: 'two words' contains ' '" in text
    assert "item 3: 'a/b' contains '/'" in text
    assert "item 5:" in text and "is 300 characters long" in text
    assert sandbox.stats("algonomy")["requests"] == 0, "not even a token request"
    from vendorflow.vendors.algonomy.optouts import open_ledger

    assert open_ledger().count() == 0
    assert not (data_root / "algonomy" / "optouts").exists()


def test_the_trigger_form_shows_user_ids_as_a_one_id_a_line_box() -> None:
    """The UI picks the field by the param's schema (FlexibleForm's FieldSelector): an array of
    strings without examples or enum is FieldStringArray, a text box split on new lines."""
    from airflow.sdk.definitions.param import ParamValidationError

    dag = the_dag()
    param = dag.params.get_param("user_ids")
    schema = param.schema
    assert [t for t in schema["type"] if t != "null"] == ["array"]
    assert "null" in schema["type"], "an emptied box is sent as null, which must still be valid"
    assert schema["items"] == {"type": "string"}
    assert "examples" not in schema and "enum" not in schema
    assert schema["title"] and param.description and len(param.description) > 40
    assert param.resolve(["a", "b"]) == ["a", "b"] and param.resolve(None) is None
    with pytest.raises(ParamValidationError):
        param.resolve(42)


def test_a_refused_inbox_file_fails_the_run_without_retrying(
    sandbox: Sandbox, algonomy: dict[str, Any], data_root: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from datetime import timedelta

    inbox = data_root / "algonomy" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "typo.csv").write_text("user_id\nfine\nnot/fine\n")
    dag = the_dag()
    for task in dag.tasks:
        task.retries, task.retry_delay = 3, timedelta(seconds=1)  # a retry cannot fix a file: it must not be tried
    run = dag.test(logical_date=logical_date_for(dag, DAY))
    assert run.state == "failed"
    assert task_states(run) == {"record_requests": "success", "send_opt_outs": "failed"}
    text = "".join(capfd.readouterr())
    assert "1 inbox file(s) were refused and nothing in them was sent" in text
    assert "typo.csv" in text and "line 3: 'not/fine' contains '/'" in text
    assert sandbox.stats("algonomy")["requests"] == 0
    assert [p.name for p in (inbox / "rejected").rglob("typo.csv")] == ["typo.csv"]
