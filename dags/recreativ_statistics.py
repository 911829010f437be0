"""
### Recreativ statistics

Daily, for the logical date (the data interval's start day, UTC), writes three
datasets under `<data_root>/recreativ/`:

Requests: the campaign list 1, the campaign statistics 1, the ad statistics 1
per campaign. The datasets and their columns are listed below.

Each is validated with Great Expectations before it replaces the day's
partition; a failing batch goes to `_quarantine/` and the task fails. All
requests share the connection's budget (5 requests/s per Auth-Token), also
with any other task or worker using the same token.

Connection: `recreativ_default` (host = API root, password = Auth-Token).
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
    dag_id="recreativ_statistics",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=dag_doc(__doc__, "recreativ/campaigns", "recreativ/campaign_statistics", "recreativ/offer_statistics"),
    tags=["vendorflow", "recreativ", "extract"],
    default_args=default_args(retries=3, retry_delay=timedelta(minutes=5)),
    params=extraction_params(),
    max_active_runs=3,
):
    for account in accounts.each("recreativ"):
        for dataset in ("campaigns", "campaign_statistics", "offer_statistics"):
            DatasetOperator(dataset=f"recreativ/{dataset}", account=account.name)
