"""Probes of the publish path: SIGKILL at every step, two runs of one date racing, a full disk,
an empty or shrunken answer after a good day, and vendor fields that drift from the declaration.

Whatever happens, a reader finds the partition's data and its manifest from one and the same run
(the manifest lives in the data file's footer), and nothing that should not be published is.
"""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.reliability.fake import DAY, SPEC, FakeHook, rows
from vendorflow.errors import ValidationFailed
from vendorflow.pipeline import storage
from vendorflow.pipeline.run import run_dataset
from vendorflow.pipeline.storage import Lake, StorageError

pytestmark = pytest.mark.reliability
PROJECT_ROOT = Path(__file__).resolve().parents[2]
KEY = SPEC.key_name


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(str(tmp_path / "lake"))


def child(lake: Lake, run_id: str, count: int, kill_at: str = "", pause_file: Path | None = None) -> subprocess.Popen:
    args = [sys.executable, "-m", "tests.reliability._lake_child", lake.root, run_id, str(count), kill_at]
    if pause_file is not None:
        args.append(str(pause_file))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), str(PROJECT_ROOT / "plugins")])}
    return subprocess.Popen(args, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finished(process: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    out, _ = process.communicate(timeout=timeout)
    return process.returncode, out.decode(errors="replace")


def published(lake: Lake) -> tuple[dict, int]:
    """The partition's manifest and the rows its data file really holds."""
    manifest = lake.read_manifest(KEY, DAY)
    assert manifest is not None, "nothing is published"
    table = pq.read_table(f"{lake.partition_path(KEY, DAY)}/{storage.DATA_FILE}")
    return manifest, table.num_rows


def staging_files(lake: Lake) -> list[Path]:
    return list(Path(lake.base, "_staging").rglob("*.parquet"))


STEPS = ["write", "close:after", "validate:after", "seal:after", "replace", "replace:after"]


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_publish_step_leaves_one_run_s_data_with_its_own_manifest(
    lake: Lake, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dataset(SPEC, hook=FakeHook([rows(0, 10)]), dt=DAY, run_id="good", lake=lake)
    code, out = finished(child(lake, "killed", 7, kill_at=step))
    assert code == -9, f"the child was to die at {step}:\n{out}"
    manifest, actual = published(lake)
    if step == "replace:after":
        assert (manifest["run_id"], manifest["rows"], actual) == ("killed", 7, 7)
    else:
        assert (manifest["run_id"], manifest["rows"], actual) == ("good", 10, 10)
    assert [p.name for p in Path(lake.partition_path(KEY, DAY)).iterdir()] == [storage.DATA_FILE]
    # The dead run's staging file (if it left one) is removed by the next run once it is stale.
    monkeypatch.setenv("VENDORFLOW_STAGING_MAX_AGE_HOURS", "0")
    run_dataset(SPEC, hook=FakeHook([rows(0, 9)]), dt=DAY, run_id="next", lake=lake)
    assert staging_files(lake) == []
    manifest, actual = published(lake)
    assert (manifest["run_id"], actual) == ("next", 9)


def test_a_fresh_staging_file_of_a_live_run_is_left_alone(lake: Lake) -> None:
    live = lake.staging_file(KEY, DAY, "live-run")
    live.write_bytes(b"being written")
    assert lake.clean_staging(KEY) == 0 and live.exists()
    assert lake.clean_staging(KEY, now=time.time() + 7 * 3600) == 1 and not live.exists()


def test_two_runs_of_one_date_racing_publish_whole_runs_one_after_the_other(lake: Lake, tmp_path: Path) -> None:
    first, second = child(lake, "run-a", 8), child(lake, "run-b", 12)
    results = [finished(first), finished(second)]
    assert [code for code, _ in results] == [0, 0], results
    manifest, actual = published(lake)
    assert (manifest["run_id"], manifest["rows"], actual) in (("run-a", 8, 8), ("run-b", 12, 12))
    assert staging_files(lake) == []


def test_a_run_waits_for_the_partition_lock_before_comparing_and_publishing(lake: Lake) -> None:
    with lake.partition_lock(KEY, DAY):
        process = child(lake, "waiting", 5)
        deadline = time.monotonic() + 60
        staged = []
        while not staged and time.monotonic() < deadline and process.poll() is None:
            staged = staging_files(lake)  # extraction is done outside the lock
            time.sleep(0.1)
        time.sleep(1.0)
        assert process.poll() is None and lake.read_manifest(KEY, DAY) is None, "published while the lock was held"
    code, out = finished(process)
    assert code == 0, out
    assert published(lake)[0]["run_id"] == "waiting"


@pytest.mark.parametrize("where", ["write", "seal"])
def test_a_full_disk_names_dataset_and_file_and_leaves_the_partition_alone(
    lake: Lake, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    run_dataset(SPEC, hook=FakeHook([rows(0, 10)]), dt=DAY, run_id="good", lake=lake)
    before = Path(lake.partition_path(KEY, DAY), storage.DATA_FILE).read_bytes()

    def full(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage.ParquetStream if where == "write" else storage.Lake, where, full)
    with pytest.raises(StorageError) as error:
        run_dataset(SPEC, hook=FakeHook([rows(0, 10), rows(10, 2)]), dt=DAY, run_id="full", lake=lake)
    text = str(error.value)
    assert "fake/stats dt=2024-03-01" in text and "No space left on device" in text and "disk is full" in text
    assert str(Path(lake.base)) in text and "data_root" in text
    assert Path(lake.partition_path(KEY, DAY), storage.DATA_FILE).read_bytes() == before
    assert staging_files(lake) == []


# --- an empty or cut-short answer after a good day ------------------------------------------------------------


@pytest.mark.parametrize("pages", [[], [[]], [rows(0, 4)]], ids=["no pages", "empty page", "far fewer"])
def test_a_shrunken_answer_is_quarantined_and_the_good_day_kept(lake: Lake, pages: list) -> None:
    run_dataset(SPEC, hook=FakeHook([rows(0, 10)]), dt=DAY, run_id="good", lake=lake)
    with pytest.raises(ValidationFailed) as error:
        run_dataset(SPEC, hook=FakeHook(pages), dt=DAY, run_id="shrunk", lake=lake)
    text = str(error.value)
    assert "holds 10 rows (run good)" in text and "accept_shrink=true" in text and "quarantined at" in text
    manifest, actual = published(lake)
    assert (manifest["run_id"], actual) == ("good", 10)
    assert list(Path(lake.base, "_quarantine", KEY, f"dt={DAY}").glob("*/validation.json"))


def test_a_modest_shrink_an_accepted_one_and_a_first_empty_day_are_published(lake: Lake) -> None:
    first = run_dataset(SPEC, hook=FakeHook([]), dt=DAY, run_id="first", lake=lake)
    assert first.rows == 0  # nothing published before: an empty day is a day
    run_dataset(SPEC, hook=FakeHook([rows(0, 10)]), dt=DAY, run_id="good", lake=lake)
    assert run_dataset(SPEC, hook=FakeHook([rows(0, 5)]), dt=DAY, run_id="half", lake=lake).rows == 5
    accepted = run_dataset(SPEC, hook=FakeHook([]), dt=DAY, run_id="told", lake=lake, accept_shrink=True)
    assert accepted.rows == 0 and published(lake)[0]["replaced_rows"] == 5


# --- vendor fields that drift from the declaration -----------------------------------------------------------


def test_unmapped_and_vanished_fields_are_counted_warned_and_kept_in_the_manifest(
    lake: Lake, caplog: pytest.LogCaptureFixture
) -> None:
    drifted = [{**r, "clicks": 3} for r in rows(0, 4)] + [{**r, "clicks": 1, "region": "EU"} for r in rows(4, 2)]
    for record in drifted:
        record["name"] = record.pop("label")  # a renamed optional field
    with caplog.at_level(logging.WARNING):
        run_dataset(SPEC, hook=FakeHook([drifted[:3], drifted[3:]]), dt=DAY, run_id="drift", lake=lake)
    manifest, _ = published(lake)
    assert manifest["schema_drift"] == {
        "unmapped_fields": {"clicks": 6, "name": 6, "region": 2},
        "absent_fields": ["label"],
    }
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "3 field(s) that no column maps" in warning and "'region' (2 records)" in warning
    assert "'label'" in warning and "renamed or removed" in warning


def test_a_required_field_going_missing_fails_and_publishes_nothing(lake: Lake) -> None:
    broken = rows(0, 3)
    del broken[1]["date"]
    with pytest.raises(Exception, match="field 'date' = '<missing>' is missing"):
        run_dataset(SPEC, hook=FakeHook([broken]), dt=DAY, run_id="broken", lake=lake)
    assert lake.read_manifest(KEY, DAY) is None and staging_files(lake) == []


def test_a_clean_run_reports_no_drift(lake: Lake) -> None:
    run_dataset(SPEC, hook=FakeHook([rows(0, 3)]), dt=DAY, run_id="clean", lake=lake)
    assert published(lake)[0]["schema_drift"] == {}
