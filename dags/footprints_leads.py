"""
### Footprints leads and reference data

Daily, for the run's day (its data interval's start, UTC: a trigger "now"
processes yesterday), writes under `<data_root>/footprints/`:

Leads change after their day (a lead becomes a customer a week later), so each
run also re-extracts the 7 days before its own (Variable `lookback_days`,
e.g. `{"footprints/leads": 14}`), and republishes, validated, only the days whose
content changed; `lead_status_changes` then records every status seen, with
when it was first seen. A backfill run covers its own day only, and skips the
reference snapshots (they hold today's lists, not that day's).

Requests: leads one per page, to the first empty page; the reference lists one
per page, to `X-Total-Pages`. The datasets and their columns are listed below.

Lead pages are fetched `concurrency` at a time (connection extra, default 4)
and streamed to Parquet in order, so memory follows the page size, not the
day. The server quietly caps `pageSize`: a short page is never taken as the end.
Each dataset is validated with Great Expectations (duplicate ids, leads outside
the day, unknown statuses, malformed ids, negative prices, row count against
the vendor's total) before it replaces the day's partition; a failing batch goes
to `_quarantine/` and the task fails.

Connection: `footprints_default` (host = tenant base URL, login = API key,
password = API secret, extra `grant_type` and its fields). The access token
travels in the query string and is masked everywhere.
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
    dag_id="footprints_leads",
    schedule=CronDataIntervalTimetable("0 1 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=dag_doc(
        __doc__,
        "footprints/leads",
        "footprints/lead_status_changes",
        "footprints/offers",
        "footprints/skus",
        "footprints/catalogues",
        "footprints/locations",
        "footprints/channels",
        "footprints/offline_campaigns",
    ),
    tags=["vendorflow", "footprints", "extract"],
    default_args=default_args(retries=3, retry_delay=timedelta(minutes=5)),
    params=extraction_params(),
    max_active_runs=3,
):
    for account in accounts.each("footprints"):
        leads = DatasetOperator(dataset="footprints/leads", account=account.name)
        leads >> DatasetOperator(dataset="footprints/lead_status_changes", account=account.name)
        for dataset in ("offers", "skus", "catalogues", "locations", "channels", "offline_campaigns"):
            DatasetOperator(dataset=f"footprints/{dataset}", account=account.name)
