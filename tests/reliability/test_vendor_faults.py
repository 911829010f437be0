"""Every fault switch of the sandbox against one real dataset (Recreativ's campaign list) over real HTTP.

A good day is published first. Then each fault is served on the rerun, and the outcome must be one
of two: the run recovers (retryable faults) and republishes exactly the vendor's data, or it fails
with a message that names the vendor and the problem, and the good day stays as it was.
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from include.sandbox.control import Sandbox
from vendorflow.errors import ValidationFailed, VendorAPIError, VendorResponseError
from vendorflow.pipeline.run import run_dataset
from vendorflow.pipeline.storage import DATA_FILE, Lake
from vendorflow.vendors.recreativ.datasets import CAMPAIGNS
from vendorflow.vendors.recreativ.hook import RecreativHook

pytestmark = [pytest.mark.reliability, pytest.mark.integration]
DAY = date(2024, 3, 1)
FAST_RETRY = {"backoff_seconds": 0.01, "max_backoff_seconds": 0.05, "requests_per_second": 50}
PATH = "/advertiser/campaigns"


@pytest.fixture
def good_day(sandbox: Sandbox, connect, state_dir: Path, tmp_path: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    sandbox.configure("recreativ", rate_limit=100)
    conn = connect("recreativ", **FAST_RETRY)
    lake = Lake(str(tmp_path / "lake"))
    result = run_dataset(CAMPAIGNS, hook=RecreativHook(), dt=DAY, run_id="good", lake=lake)
    assert result.rows == 50
    data = Path(lake.partition_path(CAMPAIGNS.key_name, DAY), DATA_FILE)
    return {"conn": conn, "lake": lake, "bytes": data.read_bytes(), "path": data}


def rerun(good_day: dict[str, Any], **kwargs: Any) -> Any:
    return run_dataset(CAMPAIGNS, hook=RecreativHook(), dt=DAY, run_id="rerun", lake=good_day["lake"], **kwargs)


def unchanged(good_day: dict[str, Any]) -> bool:
    return good_day["path"].read_bytes() == good_day["bytes"]


def test_a_clean_day_shows_no_schema_drift(good_day: dict[str, Any]) -> None:
    assert good_day["lake"].read_manifest(CAMPAIGNS.key_name, DAY)["schema_drift"] == {}


RECOVERED = [
    ("status", {"status": 503, "count": 2}),
    ("status", {"status": 429, "retry_after": 0.05}),
    ("status", {"status": 500}),
    ("drop", {}),
    ("slow", {"delay": 0.3}),
    ("trickle", {"chunk": 64, "delay": 0.05}),
]


@pytest.mark.parametrize(("kind", "spec"), RECOVERED, ids=[f"{k}-{s.get('status', '')}" for k, s in RECOVERED])
def test_retryable_faults_recover_and_republish_the_same_rows(
    sandbox: Sandbox, good_day: dict[str, Any], kind: str, spec: dict[str, Any]
) -> None:
    sandbox.fault("recreativ", kind, path=PATH, **spec)
    result = rerun(good_day)
    assert result.rows == 50
    assert pq.read_table(good_day["path"]).column("id").to_pylist() == list(range(1001, 1051))
    assert sandbox.stats("recreativ")["faults"] == spec.get("count", 1)


BROKEN = [
    ("malformed", {"variant": "html"}, VendorResponseError, "answered HTML instead of JSON"),
    ("malformed", {"variant": "xml"}, VendorResponseError, "answered XML instead of JSON"),
    ("malformed", {"variant": "truncated"}, VendorResponseError, "truncated JSON body"),
    ("malformed", {"variant": "not_a_list"}, VendorResponseError, "Recreativ GET /advertiser/campaigns"),
    ("malformed", {"variant": "wrong_type", "field": "maxclicks"}, VendorResponseError, "field 'maxclicks'"),
    ("malformed", {"variant": "missing_key", "field": "id"}, VendorResponseError, "field 'id' = '<missing>'"),
    ("malformed", {"variant": "duplicate"}, ValidationFailed, "expect_column_values_to_be_unique(column='id')"),
    ("malformed", {"variant": "empty"}, ValidationFailed, "holds 50 rows (run good)"),
    ("malformed", {"variant": "empty_list"}, ValidationFailed, "this run got 0"),
    ("status", {"status": 400}, VendorAPIError, "Recreativ GET /advertiser/campaigns: HTTP 400"),
    ("status", {"status": 503, "count": 10}, VendorAPIError, "HTTP 503: injected fault (gave up after 6 attempts)"),
    ("echo", {"status": 400}, VendorAPIError, "HTTP 400: Bad request"),
]


@pytest.mark.parametrize(
    ("kind", "spec", "error", "message"),
    BROKEN,
    ids=[f"{k}-{s.get('variant', s.get('status'))}" for k, s, _, _ in BROKEN],
)
def test_faults_that_break_the_answer_fail_by_name_and_keep_the_good_day(
    sandbox: Sandbox, good_day: dict[str, Any], kind: str, spec: dict[str, Any], error: type, message: str
) -> None:
    sandbox.fault("recreativ", kind, path=PATH, **spec)
    with pytest.raises(error) as raised:
        rerun(good_day)
    text = str(raised.value)
    assert message in text
    assert good_day["conn"]["password"] not in text  # an echoed Auth-Token is masked
    assert text.count("HTTP ") <= 1  # never "HTTP 503: HTTP 503: ..."
    assert unchanged(good_day)


def test_an_answer_trickled_past_the_deadline_is_cut_off_and_retried(
    sandbox: Sandbox,
    connect,
    good_day: dict[str, Any],  # type: ignore[no-untyped-def]
) -> None:
    connect("recreativ", **FAST_RETRY, request_deadline=1, timeout=5)
    sandbox.fault("recreativ", "trickle", path=PATH, chunk=8, delay=0.1)  # ~60 s for the whole answer
    started = time.monotonic()
    assert rerun(good_day).rows == 50
    assert time.monotonic() - started < 30  # the trickle alone would take a minute: it was cut, not waited out
    assert sandbox.stats("recreativ")["faults"] == 1


def test_an_answer_that_always_trickles_fails_naming_the_deadline_setting(
    sandbox: Sandbox,
    connect,
    good_day: dict[str, Any],  # type: ignore[no-untyped-def]
) -> None:
    connect("recreativ", **FAST_RETRY, request_deadline=0.5, timeout=5, retries=2)
    sandbox.fault("recreativ", "trickle", path=PATH, chunk=8, delay=0.1, count=5)
    with pytest.raises(VendorAPIError) as raised:
        rerun(good_day)
    text = str(raised.value)
    assert "within the 0.5 s deadline (extra request_deadline)" in text and "127.0.0.1:" in text
    assert unchanged(good_day)


def test_schema_drift_from_the_vendor_is_published_with_a_warning_in_the_manifest(
    sandbox: Sandbox, good_day: dict[str, Any]
) -> None:
    sandbox.fault("recreativ", "malformed", path=PATH, variant="extra_field", field="budgetCurrency")
    rerun(good_day)
    drift = good_day["lake"].read_manifest(CAMPAIGNS.key_name, DAY)["schema_drift"]
    assert drift == {"unmapped_fields": {"budgetCurrency": 50}}
    sandbox.fault("recreativ", "malformed", path=PATH, variant="renamed", field="title")
    rerun(good_day)
    drift = good_day["lake"].read_manifest(CAMPAIGNS.key_name, DAY)["schema_drift"]
    assert drift == {"unmapped_fields": {"title_v2": 50}, "absent_fields": ["title"]}
