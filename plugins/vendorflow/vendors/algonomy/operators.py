"""Airflow adapters for Algonomy opt-outs, in two idempotent steps.

1. :class:`RecordOptOutRequestsOperator` records the ids of a manual trigger's
   ``user_ids`` param and of the inbox files
   (:func:`~vendorflow.vendors.algonomy.optouts.collect_requests`), for every
   Algonomy account, or those the run's ``accounts`` param names.
2. :class:`AlgonomyOptOutOperator` (one per account) sends every id of its account not yet accepted
   (:func:`~vendorflow.vendors.algonomy.optouts.send_pending`) and republishes
   the ``algonomy/optouts`` partitions whose rows changed.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from airflow.sdk import BaseOperator

from vendorflow.assets import asset

DATASET = "algonomy/optouts"


class RecordOptOutRequestsOperator(BaseOperator):
    """Collect, validate and record the user ids to opt out: the ``user_ids`` param and the inbox files.

    Bad ids in the param fail the task (without retries: only a new trigger cures
    it) before anything is recorded. A bad inbox file is moved to
    ``inbox/rejected/<run>/`` with its problems beside it; the other files go on.

    :param user_ids: ids to opt out (templated); ``None`` reads the run's ``user_ids`` param.
    :param accounts: the Algonomy accounts they go to (templated); ``None`` reads the run's ``accounts``
        param, and an empty list means every configured account.
    :param read_inbox: also take the files waiting in ``<data_root>/algonomy/inbox`` (for the run's accounts)
        and in ``inbox/<account>/`` (for that account only).
    """

    template_fields = ("user_ids", "accounts")
    ui_color = "#fdf0e2"

    def __init__(
        self,
        *,
        user_ids: list[str] | str | None = None,
        accounts: list[str] | None = None,
        read_inbox: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("task_id", "record_requests")
        super().__init__(**kwargs)
        self.user_ids, self.accounts, self.read_inbox = user_ids, accounts, read_inbox

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from vendorflow import accounts
        from vendorflow.errors import ConfigError
        from vendorflow.operators.runs import run_day
        from vendorflow.vendors.algonomy.ids import BadUserIds
        from vendorflow.vendors.algonomy.inbox import Inbox
        from vendorflow.vendors.algonomy.optouts import collect_requests, open_ledger

        params = context.get("params") or {}
        raw = self.user_ids if self.user_ids is not None else params.get("user_ids")
        try:
            chosen = accounts.chosen("algonomy", self.accounts if self.accounts is not None else params.get("accounts"))
        except ConfigError as exc:
            raise AirflowFailException(f"param accounts: {exc}") from None
        inboxes = [Inbox()] + [Inbox(account=a) for a in chosen] if self.read_inbox else []
        try:
            found = collect_requests(
                open_ledger(), raw, inboxes, run_id=str(context["run_id"]), dt=run_day(context), accounts=chosen,
                log=self.log,
            )  # fmt: skip
        except BadUserIds as exc:
            raise AirflowFailException(str(exc)) from None
        return {"accounts": chosen, **found}


class AlgonomyOptOutOperator(BaseOperator):
    """Send every opt-out not yet accepted, record each acceptance, publish ``algonomy/optouts``.

    Fails (and a retry resumes where it stopped) if any id was refused or could not
    be sent; fails without retrying if ``requests_task_id`` reported rejected inbox
    files, after sending everything else.

    :param account: the Algonomy account (:mod:`vendorflow.accounts`) whose ids it sends.
    :param algonomy_conn_id: the Algonomy connection; by default the account's.
    :param requests_task_id: the task that recorded this run's requests (for its rejected files).
    """

    template_fields = ("account", "algonomy_conn_id")
    ui_color = "#e2ecfd"

    def __init__(
        self,
        *,
        account: str = "default",
        algonomy_conn_id: str | None = None,
        requests_task_id: str | None = "record_requests",
        progress_every: float = 10.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("task_id", "send_opt_outs")
        kwargs.setdefault("outlets", [asset(DATASET)])
        super().__init__(**kwargs)
        self.account = account
        self.algonomy_conn_id, self.requests_task_id, self.progress_every = (
            algonomy_conn_id,
            requests_task_id,
            progress_every,
        )

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException, AirflowFailException

        from vendorflow import accounts
        from vendorflow.operators.runs import republish
        from vendorflow.vendors.algonomy.hook import AlgonomyHook
        from vendorflow.vendors.algonomy.optouts import (
            open_ledger,
            rejected_files_message,
            send_pending,
            unsent_message,
        )

        hook = AlgonomyHook(conn_id=accounts.conn_id("algonomy", self.account, self.algonomy_conn_id))
        summary = None
        try:
            summary = send_pending(
                hook, open_ledger(), account=self.account, logger=self.log, progress_every=self.progress_every
            )
        finally:  # the sending's outcome is never hidden by a failure to publish it
            touched = sorted(summary.touched if summary else set())
            days = [date.fromisoformat(d) for d in touched if d and d != "None"]
            published = republish(DATASET, days, hook, context, self.log, tolerate_errors=True, account=self.account)
        context["outlet_events"][asset(DATASET)].extra = {
            "account": self.account,
            "partitions": touched,
            "published": published,
        }
        if summary.failed or summary.not_sent:
            raise AirflowException(unsent_message(summary))
        recorded = context["ti"].xcom_pull(task_ids=self.requests_task_id) if self.requests_task_id else None
        rejected = list((recorded or {}).get("rejected") or [])
        if rejected:
            raise AirflowFailException(rejected_files_message(rejected))
        return {**summary.as_dict(), "published": published}
