"""
### Allyy upload

Runs when a dataset named in `include/allyy_uploads.json` publishes a
partition that passed validation (its asset event carries the `dt`), and on
manual runs for the partitions given in the `partitions` param
(`recreativ/offer_statistics/dt=2024-03-01`, or `recreativ/offer_statistics`
for the run's day: its data interval's start, yesterday for a trigger "now").
A manual run with no partitions uploads every configured dataset's partition
of the run's day. An asset event from a run with a lookback names every day
it republished: each is uploaded again (its content changed).

1. `upload`: each partition is streamed from Parquet to a CSV (header row) or
   a JSON array of objects, as configured, and posted to its Allyy
   datasource; then the task defers (no worker slot) until Allyy reports
   every upload finished. A partition is uploaded once: a rerun skips what
   Allyy finished unless the `force` param is set. Quarantined or unpublished
   partitions are never uploaded. A failed upload fails the task with
   Allyy's own messages.
2. `uploads`: publishes `<data_root>/allyy/uploads/` (dataset, partition,
   upload id, rows, bytes, state, times) for analysts, also after a failure
   (`all_uploaded` then fails the run when an upload failed).

The configuration file is read when this file is parsed: it is a small local
JSON file (no network, no Variable), and it decides the schedule. Point
`VENDORFLOW_ALLYY_UPLOADS` at another file to use your own.

Connection: `allyy_default`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, AssetAny, Param, task

from vendorflow import accounts
from vendorflow.assets import asset
from vendorflow.dag_defaults import default_args
from vendorflow.datasets.docs import dag_doc
from vendorflow.operators.dataset import DatasetOperator
from vendorflow.vendors.allyy.operators import AllyyUploadOperator
from vendorflow.vendors.allyy.uploads import load_targets

TARGETS = load_targets()

with DAG(
    dag_id="allyy_upload",
    schedule=AssetAny(*(asset(t.dataset) for t in TARGETS)) if TARGETS else None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=dag_doc(__doc__, "allyy/uploads"),
    tags=["vendorflow", "allyy", "upload"],
    default_args=default_args(retries=2, retry_delay=timedelta(minutes=5)),
    max_active_runs=1,  # uploads of one datasource in order, and one ledger writer at a time
    params={
        "partitions": Param(
            [],
            type="array",
            items={"type": "string", "pattern": r"^[a-z][a-z0-9_]*/[a-z][a-z0-9_]*(/dt=\d{4}-\d{2}-\d{2})?$"},
            title="Partitions",
            description="For manual runs: partitions to upload, e.g. recreativ/offer_statistics/dt=2024-03-01 "
            "(a dataset alone means its partition of the run's day). Empty: every configured dataset's "
            "partition of the run's day.",
        ),
        "force": Param(
            False, type="boolean", title="Force", description="Upload again partitions Allyy already finished."
        ),
    },
):

    @task(trigger_rule="all_success")
    def all_uploaded() -> None:
        """Gives the run the upload's outcome: it fails when an upload failed, although the ledger was published."""

    done = all_uploaded()
    for account in accounts.each("allyy"):
        upload = AllyyUploadOperator(task_id="upload", account=account.name, poll_interval=15.0)
        record = DatasetOperator(
            dataset="allyy/uploads",
            account=account.name,
            trigger_rule="all_done",  # a failed upload is worth recording too
        )
        upload >> record
        [upload, record] >> done
