"""The access token and the API secret never reach a log line, an exception, XCom or a rendered field.

Both Footprints DAGs run with DEBUG logging everywhere (urllib3 prints every
request URL at DEBUG, and Footprints' URLs carry ``access_token``) and a forced
failure whose vendor message echoes the request URL, token included. The token
(recognisable by the prefix the sandbox is told to give it), the secret and the
PIN are then searched for in everything the runs left behind.

The test cannot pass vacuously: it first checks that the DEBUG lines and the
failure it looks through are really there, and then switches the masking off
(redaction of URLs and messages, the urllib3 log filter, registration with
Airflow's masker) and shows that the same search now finds the token.
"""

from __future__ import annotations

import io
import json
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from include.sandbox.control import Sandbox
from tests.e2e.test_footprints_leads import DAY, run_dag

pytestmark = pytest.mark.e2e
TOKEN_MARK = "LEAKCANARYTOKEN"
SECRET_MARK = "LEAKCANARYSECRET"
PIN = "9081726354"


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """Every log record of the process, at DEBUG, formatted with its arguments."""
    # Airflow configures logging once, on first use, replacing the root handlers: let it do so first.
    import airflow.settings  # noqa: F401
    from airflow.dag_processing.dagbag import DagBag  # noqa: F401
    from airflow.sdk.log import configure_logging

    configure_logging()
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    touched = [root, logging.getLogger("urllib3"), logging.getLogger("vendorflow"), logging.getLogger("airflow.task")]
    levels = [logger.level for logger in touched]
    for logger in touched:
        logger.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        for logger, level in zip(touched, levels, strict=True):
            logger.setLevel(level)


def everything_left_behind(runs: list[Any], output: str, debug: str, data_root: Path) -> dict[str, str]:
    """Logs (captured streams, the DEBUG handler, log files), XCom values and rendered fields of the runs."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    run_ids = [r.run_id for r in runs]
    with create_session() as session:
        xcoms = session.execute(
            select(XComModel.dag_id, XComModel.task_id, XComModel.key, XComModel.value).where(
                XComModel.run_id.in_(run_ids)
            )
        ).all()
        rendered = session.execute(
            select(RenderedTaskInstanceFields.task_id, RenderedTaskInstanceFields.rendered_fields).where(
                RenderedTaskInstanceFields.run_id.in_(run_ids)
            )
        ).all()
    log_files = "".join(p.read_text(errors="replace") for p in Path(os.environ["AIRFLOW_HOME"]).rglob("*.log"))
    manifests = "".join(p.read_text() for p in data_root.rglob("*.json"))
    return {
        "output": output,
        "debug log": debug,
        "log files": log_files,
        "manifests": manifests,
        "xcom": repr(xcoms),
        "rendered fields": repr(rendered),
    }


def leaks(places: dict[str, str], *marks: str) -> dict[str, list[str]]:
    return {
        mark: [where for where, text in places.items() if mark in text]
        for mark in marks
        if any(mark in t for t in places.values())
    }


def test_no_token_secret_or_pin_in_logs_exceptions_xcom_or_rendered_fields(
    sandbox: Sandbox,
    connect,
    data_root: Path,
    state_dir: Path,
    airflow_db: None,  # type: ignore[no-untyped-def]
    debug_log: io.StringIO,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox.configure(
        "footprints",
        token_prefix=TOKEN_MARK,
        leads_by_day={DAY.isoformat(): 350},
        reject_paths=["/api/offlineCampaign", "/api/loyaltyCode/list"],
    )
    conn = connect("footprints", grant_type="pin", pin=PIN)
    conn["password"] = f"sandbox-{SECRET_MARK}-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("AIRFLOW_CONN_FOOTPRINTS_DEFAULT", json.dumps(conn))

    runs = [run_dag("footprints_leads"), run_dag("footprints_loyalty")]
    assert [r.state for r in runs] == ["failed", "failed"]  # the forced failures happened
    captured = capfd.readouterr()
    places = everything_left_behind(runs, captured.out + captured.err, debug_log.getvalue(), data_root)

    # What the search looks through is really there: DEBUG request lines, the vendor's echo, XCom results.
    assert "/footprints/api/lead?startDate=" in places["debug log"] and "access_token=***" in places["debug log"]
    assert (
        "Request rejected: GET /footprints/api/offlineCampaign?" in places["output"]
        or "Request rejected: GET /api/offlineCampaign?" in places["output"]
    )
    assert "footprints/leads" in places["xcom"]
    issued = sandbox._call("GET", "/_sandbox/footprints/tokens")
    assert issued["by_grant"] == {"pin": 1}
    assert any(TOKEN_MARK in r["query"] for r in sandbox.requests("footprints"))  # the token did travel in URLs

    assert leaks(places, TOKEN_MARK, SECRET_MARK, PIN) == {}

    # Switch the masking off: the same search must now find the token.
    import vendorflow.http.client as client
    import vendorflow.http.redact as redact
    import vendorflow.http.tokens as tokens

    monkeypatch.setattr(redact.RedactingFilter, "filter", lambda self, record: True)
    monkeypatch.setattr(
        redact, "redact_params", lambda params: [(str(k), str(v)) for k, v in dict(params or {}).items()]
    )
    monkeypatch.setattr(
        client, "redact_params", lambda params: [(str(k), str(v)) for k, v in dict(params or {}).items()]
    )
    monkeypatch.setattr(client, "redact_text", lambda text, secrets=(): text)
    monkeypatch.setattr(redact, "redact_text", lambda text, secrets=(): text)  # what every error text goes through
    monkeypatch.setattr(tokens, "mask", lambda secret: None)
    monkeypatch.setattr(client, "mask", lambda secret: None)
    monkeypatch.setenv("VENDORFLOW_STATE_DIR", str(state_dir.parent / "state-unmasked"))  # a token the masker never saw
    sandbox._call("POST", "/_sandbox/footprints/revoke")
    debug_log.truncate(0)
    unmasked = run_dag("footprints_leads", tasks=["leads", "offline_campaigns"])
    captured = capfd.readouterr()
    places = everything_left_behind([unmasked], captured.out + captured.err, debug_log.getvalue(), data_root)
    found = leaks(places, TOKEN_MARK).get(TOKEN_MARK, [])
    # urllib3's DEBUG request lines and the failure's message (the vendor's echo) both carry it now.
    assert "debug log" in found and "output" in found, found
