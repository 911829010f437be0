"""
### Recomendo training

Runs whenever `footprints/leads` gets a validated partition (the Footprints
asset event names it in `extra["dt"]`; several events folded into one run mean
several partitions). A manual run may name the partition(s) with the `dt`
parameter; otherwise the logical date is used.

1. **send_events**: each lead becomes two Recomendo events: a `$set` on the
   customer (entity id = the Footprints `client_id`, properties `location_id`,
   `channel_id`) and an interaction `lead` (the `interaction_event` parameter)
   from the customer to the offer (`targetEntityType` `item`, the `offer_id`),
   at the lead's `created_at`. One request per event, up to the connection's
   `concurrency` (8) at once under its `requests_per_second` budget. Every
   outcome is recorded by key in a durable ledger, so a retry or a rerun
   resends nothing Recomendo accepted; `recomendo/events_sent` shows them.
2. **request_training**: at most one `/v1/train` per 30 minutes
   (`training_interval_seconds` + `training_margin_seconds` of the connection),
   whatever the number of runs, retries, workers or restarts. A request inside
   the window waits *deferred* (in the triggerer, no worker slot) until it
   opens; requests that pile up meanwhile become one call. Skipped when no
   event was accepted since the last accepted training.
   `recomendo/training_requests` records each request and the call it became.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from vendorflow import accounts
from vendorflow.assets import asset
from vendorflow.dag_defaults import default_args
from vendorflow.datasets.docs import dag_doc
from vendorflow.vendors.recomendo.operators import RecomendoEventsOperator, RecomendoTrainingOperator

with DAG(
    dag_id="recomendo_training",
    schedule=[asset("footprints/leads")],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=dag_doc(__doc__, "recomendo/events_sent", "recomendo/training_requests"),
    tags=["vendorflow", "recomendo", "load"],
    default_args=default_args(retries=3, retry_delay=timedelta(minutes=2)),
    max_active_runs=4,
    params={
        "dt": Param(
            None,
            type=["null", "string", "array"],
            description="footprints/leads partition(s), YYYY-MM-DD; default: the triggering asset events'",
        ),
        "interaction_event": Param(
            "lead", type="string", pattern=r"^[^$]", description="name of the customer -> offer event"
        ),
    },
):
    for account in accounts.each("recomendo"):
        events = RecomendoEventsOperator(
            task_id="send_events",
            account=account.name,
            dt="{{ params.dt or '' }}",
            interaction_event="{{ params.interaction_event }}",
        )
        training = RecomendoTrainingOperator(
            task_id="request_training", account=account.name, dt="{{ params.dt or '' }}"
        )
        events >> training
