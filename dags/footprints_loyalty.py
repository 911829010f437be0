"""
### Footprints loyalty campaigns and codes

Daily snapshots under `<data_root>/footprints/`:

Requests: campaigns 2 (the list and `/active-campaigns`); codes one per page,
to `totalResults`. The datasets and their columns are listed below.

Each is validated (unknown code statuses, malformed ids, campaigns ending
before they start, row count against `totalResults`) before it replaces the
day's partition; a failing batch goes to `_quarantine/` and the task fails.

Connection: `footprints_default`, as for `footprints_leads`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable

from vendorflow import accounts
from vendorflow.dag_defaults import default_args, extraction_params
from vendorflow.datasets.docs import dag_doc
from vendorflow.operators.dataset import DatasetOperator

with DAG(
    dag_id="footprints_loyalty",
    schedule=CronDataIntervalTimetable("30 1 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=dag_doc(__doc__, "footprints/loyalty_campaigns", "footprints/loyalty_codes"),
    tags=["vendorflow", "footprints", "extract", "loyalty"],
    default_args=default_args(retries=3, retry_delay=timedelta(minutes=5)),
    params=extraction_params(),
    max_active_runs=3,
):
    for account in accounts.each("footprints"):
        for dataset in ("loyalty_campaigns", "loyalty_codes"):
            DatasetOperator(dataset=f"footprints/{dataset}", account=account.name)
