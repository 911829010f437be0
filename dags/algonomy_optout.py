"""
### Algonomy opt-outs

Opts users out of Algonomy's personalisation cloud, which deletes their
profile for good. Ids come from two places:

- **a manual trigger**: the *User ids to opt out* box of the trigger form, one
  id a line (the `user_ids` param);
- **the inbox**, every hour: files dropped in `<data_root>/algonomy/inbox/`
  (CSV or text, one id a line; a CSV may have a `user_id` header). Each file is
  processed once and moved to `inbox/done/<run>/`; a file with a bad id is
  refused as a whole and moved to `inbox/rejected/<run>/` with its problems
  in `<file>.errors.txt`. Write files under another name and rename them into
  place (names starting with `.` or ending in `.tmp`/`.part` are skipped).

Each id goes to every configured Algonomy account (site), unless the run's
`accounts` param names some; a file in `inbox/<account>/` goes to that
account only. One send task per account.

Files are split into lines on `\n` and `\r\n` only. Ids are trimmed and
de-duplicated, blank lines skipped; an id that cannot be a user id (spaces,
`/`, over 256 characters) or that holds a control, invisible or
line-separator character is refused with its line and position before
anything is sent.

- `record_requests` validates the ids and writes each new one to the ledger as
  `requested`;
- `send_opt_outs` sends every id not yet accepted (also what a crashed run left),
  marks each `accepted` with Algonomy's answer and time, and republishes
  `algonomy/optouts`.

An id accepted once is never sent again, whatever the reruns, retries or
crashes. Sending is concurrent, paced by the connection's budget
(100 requests/s, shared with every other task and worker using the credential).

Connection: `algonomy_default` (host = gateway, login = client_id,
password = client_secret, extra `api_key`).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from vendorflow import accounts
from vendorflow.dag_defaults import default_args
from vendorflow.datasets.docs import dag_doc
from vendorflow.vendors.algonomy.operators import AlgonomyOptOutOperator, RecordOptOutRequestsOperator

with DAG(
    dag_id="algonomy_optout",
    schedule=timedelta(hours=1),
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=dag_doc(__doc__, "algonomy/optouts"),
    tags=["vendorflow", "algonomy", "privacy"],
    default_args=default_args(retries=3, retry_delay=timedelta(minutes=2)),
    max_active_runs=1,
    params={
        "user_ids": Param(
            [],
            type=["array", "null"],
            items={"type": "string"},
            title="User ids to opt out",
            description=(
                "One user id a line, exactly as your site sends it to Algonomy. Irreversible: Algonomy deletes "
                "each profile. Spaces around an id are trimmed and repeated ids sent once; an id with spaces, '/' "
                "or control characters refuses the whole run before anything is sent. Leave empty to process "
                "only the inbox."
            ),
        ),
        "accounts": Param(
            [],
            type=["array", "null"],
            items={"type": "string"},
            title="Algonomy accounts",
            description=(
                "The accounts (sites) to opt these users out of, one a line, as named in VENDORFLOW_ACCOUNTS. "
                "Empty: every configured account. Files in the inbox go to the same accounts; a file in "
                "inbox/<account>/ goes to that account only."
            ),
        ),
    },
):
    record = RecordOptOutRequestsOperator()
    for account in accounts.each("algonomy"):
        record >> AlgonomyOptOutOperator(account=account.name)
