"""The upload operator against the sandbox, without a DAG run: what a crash mid-upload leaves behind is
checked at Allyy before anything is sent again; the DAG is scheduled on the configured datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include.sandbox.control import Sandbox

pytestmark = pytest.mark.integration
DATASET, DAY = "recreativ/campaign_statistics", "2024-03-01"
KEY = f"{DATASET}/dt={DAY}"


@pytest.fixture
def published(connect, state_dir: Path, data_root: Path) -> Path:  # type: ignore[no-untyped-def]
    """A validated partition: the data file and its manifest, as the pipeline publishes them."""
    from vendorflow.pipeline.storage import Lake

    connect("allyy", backoff_seconds=0.01, max_backoff_seconds=0.05)
    data_root.mkdir(parents=True)
    staged = data_root / "staged.parquet"
    table = pa.table({"campaign_id": pa.array([1001, 1002], pa.int64()), "views": pa.array([10, 20], pa.int64())})
    pq.write_table(table, staged)
    Lake(str(data_root)).publish(staged, DATASET, DAY, {"dataset": DATASET, "dt": DAY, "rows": 2})
    return data_root


def execute(**params: Any) -> Any:
    """Run the operator's execute; returns the trigger it deferred to (or its result)."""
    from airflow.sdk.exceptions import TaskDeferred

    from vendorflow.vendors.allyy.operators import AllyyUploadOperator

    operator = AllyyUploadOperator(task_id="upload", poll_interval=0.1)
    try:
        return operator.execute(
            {"params": {"partitions": [KEY], "force": False, **params}, "triggering_asset_events": None}
        )
    except TaskDeferred as deferred:
        return deferred.trigger


def arrived(sandbox: Sandbox) -> list[dict[str, Any]]:
    return sandbox._call("GET", "/_sandbox/allyy/uploads")


def test_an_upload_interrupted_after_sending_is_found_not_sent_again(sandbox: Sandbox, published: Path) -> None:
    from vendorflow.ledger import Ledger
    from vendorflow.vendors.allyy.datasets import UPLOADS_LEDGER

    trigger = execute()
    [upload] = arrived(sandbox)
    assert trigger.uploads[0]["upload_id"] == upload["id"] and trigger.keys == [KEY]

    # The worker died after the file went out but before Allyy's answer was recorded.
    ledger = Ledger(UPLOADS_LEDGER)
    entry = ledger.get(KEY)
    ledger.put(KEY, "sending", {**entry.data, "upload_id": None})
    trigger = execute()
    assert len(arrived(sandbox)) == 1  # found at Allyy, not sent twice
    assert trigger.uploads[0]["upload_id"] == upload["id"] and ledger.get(KEY).status == "processing"

    # Still processing at Allyy: a rerun waits for it instead of sending it again.
    trigger = execute()
    assert len(arrived(sandbox)) == 1 and trigger.uploads[0]["upload_id"] == upload["id"]

    # Nothing of the kind arrived: then it is sent.
    ledger.put(KEY, "sending", {**entry.data, "upload_id": None, "bytes": entry.data["bytes"] + 1})
    execute()
    assert len(arrived(sandbox)) == 2


def test_a_partition_without_manifest_or_not_configured_is_refused(sandbox: Sandbox, published: Path) -> None:
    # A data file without the manifest a validated publish seals into its footer (written by hand).
    import pyarrow.parquet as pq

    from vendorflow.errors import ConfigError, ValidationFailed

    data_file = published / DATASET / f"dt={DAY}" / "data.parquet"
    pq.write_table(pq.read_table(data_file).replace_schema_metadata(None), data_file)
    with pytest.raises(ValidationFailed, match=f"{KEY}: no validated partition is published"):
        execute()
    with pytest.raises(ConfigError, match="recreativ/campaigns: not configured for upload"):
        execute(partitions=["recreativ/campaigns/dt=2024-03-01"])
    assert arrived(sandbox) == []


def test_the_dag_is_scheduled_on_the_configured_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import AssetAny

    config = tmp_path / "uploads.json"
    config.write_text(
        json.dumps(
            {
                "uploads": [
                    {"dataset": "recreativ/offer_statistics", "dataSetId": "d", "datasourceId": "s", "format": "json"},
                    {"dataset": "footprints/leads", "dataSetId": "d", "datasourceId": "s2", "format": "csv"},
                ]
            }
        )
    )
    monkeypatch.setenv("VENDORFLOW_ALLYY_UPLOADS", str(config))
    folder = tmp_path / "dags"
    folder.mkdir()
    shutil.copy(Path(__file__).parents[2] / "dags" / "allyy_upload.py", folder)
    dag = DagBag(dag_folder=str(folder)).dags["allyy_upload"]
    assert isinstance(dag.schedule, AssetAny)  # either dataset alone starts a run
    assert sorted(a.name for a in dag.schedule.objects) == ["footprints/leads", "recreativ/offer_statistics"]


def test_a_partition_claimed_by_another_run_meanwhile_is_not_sent_twice(
    sandbox: Sandbox, published: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vendorflow.errors import VendorflowError
    from vendorflow.ledger import Ledger
    from vendorflow.vendors.allyy.datasets import UPLOADS_LEDGER
    from vendorflow.vendors.allyy.operators import AllyyUploadOperator

    class RacedLedger(Ledger):
        """Another run claims the partition right after this one looked at it."""

        def get(self, key: str) -> Any:
            seen = super().get(key)
            Ledger(UPLOADS_LEDGER).put(key, "sending", {"by": "another run"})
            return seen

    monkeypatch.setattr(AllyyUploadOperator, "_ledger", lambda self: RacedLedger(UPLOADS_LEDGER))
    with pytest.raises(VendorflowError, match="another run started uploading it meanwhile"):
        execute()
    assert arrived(sandbox) == []
    assert Ledger(UPLOADS_LEDGER).get(KEY).data == {"by": "another run"}


def test_a_run_started_by_the_datasets_asset_event_uploads_that_partition(sandbox: Sandbox, published: Path) -> None:
    from types import SimpleNamespace

    from airflow.sdk.exceptions import TaskDeferred
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    from vendorflow.vendors.allyy.operators import AllyyUploadOperator

    # What DatasetOperator puts on the event when it publishes (DatasetResult.as_dict()).
    event = SimpleNamespace(
        asset=SimpleNamespace(name=DATASET, uri=f"x-vendorflow://{DATASET}"),
        source_aliases=[],
        extra={"dataset": DATASET, "dt": DAY, "rows": 2, "path": str(published / DATASET / f"dt={DAY}")},
    )
    context = {
        "params": {"partitions": [], "force": False},
        "triggering_asset_events": TriggeringAssetEventsAccessor.build([event]),
    }
    with pytest.raises(TaskDeferred) as deferred:
        AllyyUploadOperator(task_id="upload").execute(context)
    assert deferred.value.trigger.keys == [KEY]
    [upload] = arrived(sandbox)
    assert upload["format"] == "csv" and upload["rows"] == [
        {"campaign_id": "1001", "views": "10"},
        {"campaign_id": "1002", "views": "20"},
    ]
