"""
### Recomendo usage: the month's last day

`GET /v1/usage` returns the current month only, and the month resets on the
1st: `recomendo_usage`'s run for a month's last day starts after midnight, when
the report already holds the new month. So this DAG runs at 23:58 UTC on the
last day of every month and reads the report every `usage_poll_seconds` (a
connection extra, default 5) until the vendor rolls over to the next month, for
at most `month_end_wait_seconds` (default 900). It publishes the last report
read before the rollover as `recomendo/usage` for that day: the whole month,
its last day short of at most the usage between that read and the rollover.
The manifest says how short (`month_end_gap_seconds`, `month_end_read_at`,
`rollover_seen_at`). `recomendo_usage`'s run after midnight then finds the
month over and is skipped, leaving this partition in place.

The data interval is the day itself up to 23:58, so `dt` is that day. A run for
any other day is skipped, saying why, and so is a run that starts after the
rollover (the month can no longer be read). It is not part of `make demo`,
which runs days that are over.

Connection: `recomendo_default`, as for `recomendo_usage`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronTriggerTimetable

from vendorflow import accounts
from vendorflow.dag_defaults import default_args, extraction_params
from vendorflow.datasets.docs import dag_doc
from vendorflow.vendors.recomendo.operators import RecomendoUsageOperator

with DAG(
    dag_id="recomendo_usage_month_end",
    # 23:58 on the last day of each month ("L"); the data interval is that day from 00:00.
    schedule=CronTriggerTimetable("58 23 L * *", timezone="UTC", interval=timedelta(hours=23, minutes=58)),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=dag_doc(__doc__, "recomendo/usage"),
    tags=["vendorflow", "recomendo", "extract"],
    # a retry after the rollover can only find the month over: one quick retry for a failed read
    default_args=default_args(retries=1, retry_delay=timedelta(seconds=30)),
    params=extraction_params(),
    max_active_runs=1,
):
    for account in accounts.each("recomendo"):
        RecomendoUsageOperator(task_id="usage", account=account.name, until_rollover=True)
