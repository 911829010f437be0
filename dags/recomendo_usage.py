"""
### Recomendo usage

Daily, writes `recomendo/usage` (`date, user_quota, remaining_quota, usage_plan`):
this month's usage report (`GET /v1/usage`) exactly as Recomendo returns it on
the run's day, in the partition of the logical date. The month resets on the
1st, so the report holds the days from the 1st to the day it was read.

When the quota left for the month falls under the connection's
`quota_warning_share` (default 0.1, i.e. 10%), the task log says so at WARNING
level and the `recomendo/usage` asset event carries `quota.quota_warning = true`
(with `remaining_quota`, `monthly_quota` and `remaining_share`).

Connection: `recomendo_default` (login = client id, password = client secret).
The JWT is fetched once per hour per credential and shared by every task.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, CronDataIntervalTimetable

from vendorflow import accounts
from vendorflow.dag_defaults import default_args, extraction_params
from vendorflow.datasets.docs import dag_doc
from vendorflow.vendors.recomendo.operators import RecomendoUsageOperator

with DAG(
    dag_id="recomendo_usage",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=dag_doc(__doc__, "recomendo/usage"),
    tags=["vendorflow", "recomendo", "extract"],
    default_args=default_args(retries=3, retry_delay=timedelta(minutes=5)),
    params=extraction_params(),
    max_active_runs=1,
):
    for account in accounts.each("recomendo"):
        RecomendoUsageOperator(task_id="usage", account=account.name)
