"""
### Allyy models

Daily, writes `<data_root>/allyy/models/dt=<logical date>/`: a snapshot of
every model of the customer (`GET /api/model/v1.0/customer/{customerId}/model_v2_1`,
read with take/skip paging to Allyy's `totalItemsCount`), so analysts can
follow training status and AUROC over time.

Columns: `model_id, customer_id, data_set_id, title, type, status,
training_status, training_started, training_finished, training_error_code,
au_roc`. Validated before it replaces the day's partition (unique
`model_id`, `au_roc` in [0, 1], as many rows as Allyy announced); a failing
batch goes to `_quarantine/` and the task fails.

Connection: `allyy_default` (login = client id, password = client secret,
extra `customer_id`).
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
    dag_id="allyy_models",
    schedule=CronDataIntervalTimetable("0 1 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=dag_doc(__doc__, "allyy/models"),
    tags=["vendorflow", "allyy", "extract"],
    default_args=default_args(retries=3, retry_delay=timedelta(minutes=5)),
    params=extraction_params(),
    max_active_runs=3,
):
    for account in accounts.each("allyy"):
        DatasetOperator(dataset="allyy/models", account=account.name)
