"""The uploader without Airflow or HTTP: a fake Allyy, a real ledger and a real lake.

Each partition is sent once; a rerun skips what finished, waits for what is
processing, checks what a crash left in ``sending``; Allyy's outcome is recorded."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vendorflow.errors import ValidationFailed, VendorAPIError
from vendorflow.ledger import Ledger
from vendorflow.pipeline.storage import Lake
from vendorflow.vendors.allyy.uploads import (
    FAILED,
    FINISHED,
    PROCESSING,
    SENDING,
    Uploader,
    UploadTarget,
    partition_key,
    requested,
    validated_manifests,
)

DATASET, DAY = "recreativ/campaign_statistics", "2024-03-01"
KEY = partition_key(DATASET, DAY)
TARGET = UploadTarget(DATASET, "ds", "src", "csv")
log = logging.getLogger("test")


class FakeAllyy:
    upload_reconcile_window = timedelta(minutes=5)

    def __init__(self, refuse: bool = False) -> None:
        self.sent: list[str] = []
        self.refuse = refuse

    def upload_file(self, data_set_id: str, datasource_id: str, fmt: str, path: Path, filename: str) -> dict[str, Any]:
        if self.refuse:
            raise VendorAPIError("Allyy", "POST /upload", 400, "bad file")
        self.sent.append(path.read_text())
        return {"id": f"u{len(self.sent)}", "status": 1}

    def find_upload(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        return {"id": "u-found", "status": 1} if self.sent else None


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    staged = tmp_path / "staged.parquet"
    pq.write_table(pa.table({"campaign_id": pa.array([1001, 1002], pa.int64())}), staged)
    lake = Lake(str(tmp_path / "data"))
    lake.publish(staged, DATASET, DAY, {"dataset": DATASET, "dt": DAY, "rows": 2})
    return lake


def run(uploader: Uploader, lake: Lake, force: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    wanted = [(DATASET, DAY)]
    return uploader.send_all(wanted, {DATASET: TARGET}, validated_manifests(lake, wanted), force=force)


def test_a_partition_is_sent_once_and_its_outcome_recorded(tmp_path: Path, lake: Lake) -> None:
    allyy, ledger = FakeAllyy(), Ledger("allyy_uploads", tmp_path / "l.sqlite")
    uploader = Uploader(allyy, ledger, lake, log)  # type: ignore[arg-type]
    waits, rejected = run(uploader, lake)
    assert allyy.sent == ['"campaign_id"\n1001\n1002\n'] and rejected == []
    assert [w["upload_id"] for w in waits] == ["u1"] and ledger.get(KEY).status == PROCESSING

    assert run(uploader, lake)[0][0]["upload_id"] == "u1" and len(allyy.sent) == 1  # processing: waited for
    problems = uploader.record({"status": "done", "keys": [KEY], "uploads": {KEY: {"id": "u1", "status": 2}}})
    assert problems == [] and ledger.get(KEY).status == FINISHED
    assert run(uploader, lake) == ([], []) and len(allyy.sent) == 1  # finished: not sent again
    assert run(uploader, lake, force=True)[0][0]["upload_id"] == "u2"  # unless forced
    assert uploader.summary([KEY]) == [{"key": KEY, "state": PROCESSING, "upload_id": "u2", "rows": 2, "bytes": 24}]


def test_a_crash_after_sending_is_found_at_allyy_not_sent_again(tmp_path: Path, lake: Lake) -> None:
    allyy, ledger = FakeAllyy(), Ledger("allyy_uploads", tmp_path / "l.sqlite")
    uploader = Uploader(allyy, ledger, lake, log)  # type: ignore[arg-type]
    run(uploader, lake)
    ledger.put(KEY, SENDING, {**ledger.get(KEY).data, "upload_id": None})
    waits, _ = run(uploader, lake)
    assert [w["upload_id"] for w in waits] == ["u-found"] and len(allyy.sent) == 1


def test_a_refusal_is_recorded_with_allyys_words(tmp_path: Path, lake: Lake) -> None:
    ledger = Ledger("allyy_uploads", tmp_path / "l.sqlite")
    waits, rejected = run(Uploader(FakeAllyy(refuse=True), ledger, lake, log), lake)  # type: ignore[arg-type]
    assert waits == [] and len(rejected) == 1 and rejected[0].startswith(f"{KEY}: ")
    assert ledger.get(KEY).status == FAILED and ledger.get(KEY).data["message"] == "bad file"


def test_only_configured_validated_partitions_are_taken(lake: Lake) -> None:
    with pytest.raises(ValidationFailed, match=r"recreativ/campaign_statistics/dt=2024-03-02: no validated partition"):
        validated_manifests(lake, [(DATASET, DAY), (DATASET, "2024-03-02")])
    targets = {DATASET: TARGET}
    assert requested(None, [DATASET, f"{DATASET}/dt={DAY}"], DAY, targets, "c.json") == [(DATASET, DAY)]
    with pytest.raises(Exception, match="footprints/leads: not configured for upload in c.json"):
        requested(None, "footprints/leads", DAY, targets, "c.json")
