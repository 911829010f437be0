"""Airflow adapters for Algonomy opt-outs, in two idempotent steps.

1. :class:`RecordOptOutRequestsOperator` records the ids of a manual trigger's
   ``user_ids`` param and of the inbox files
   (:func:`~vendorflow.vendors.algonomy.optouts.collect_requests`).
2. :class:`AlgonomyOptOutOperator` sends every id not yet accepted
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
    :param read_inbox: also take the files waiting in ``<data_root>/algonomy/inbox``.
    """

    template_fields = ("user_ids",)
    ui_color = "#fdf0e2"

    def __init__(self, *, user_ids: list[str] | str | None = None, read_inbox: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("task_id", "record_requests")
        super().__init__(**kwargs)
        self.user_ids, self.read_inbox = user_ids, read_inbox

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from vendorflow.operators.runs import run_day
        from vendorflow.vendors.algonomy.ids import BadUserIds
        from vendorflow.vendors.algonomy.inbox import Inbox
        from vendorflow.vendors.algonomy.optouts import collect_requests, open_ledger

        raw = self.user_ids if self.user_ids is not None else (context.get("params") or {}).get("user_ids")
        try:
            return collect_requests(
                open_ledger(),
                raw,
                Inbox() if self.read_inbox else None,
                run_id=str(context["run_id"]),
                dt=run_day(context),
                log=self.log,
            )
        except BadUserIds as exc:
            raise AirflowFailException(str(exc)) from None


class AlgonomyOptOutOperator(BaseOperator):
    """Send every opt-out not yet accepted, record each acceptance, publish ``algonomy/optouts``.

    Fails (and a retry resumes where it stopped) if any id was refused or could not
    be sent; fails without retrying if ``requests_task_id`` reported rejected inbox
    files, after sending everything else.

    :param algonomy_conn_id: the Algonomy connection.
    :param requests_task_id: the task that recorded this run's requests (for its rejected files).
    """

    template_fields = ("algonomy_conn_id",)
    ui_color = "#e2ecfd"

    def __init__(
        self,
        *,
        algonomy_conn_id: str = "algonomy_default",
        requests_task_id: str | None = "record_requests",
        progress_every: float = 10.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("task_id", "send_opt_outs")
        kwargs.setdefault("outlets", [asset(DATASET)])
        super().__init__(**kwargs)
        self.algonomy_conn_id, self.requests_task_id, self.progress_every = (
            algonomy_conn_id,
            requests_task_id,
            progress_every,
        )

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException, AirflowFailException

        from vendorflow.operators.runs import republish
        from vendorflow.vendors.algonomy.hook import AlgonomyHook
        from vendorflow.vendors.algonomy.optouts import (
            open_ledger,
            rejected_files_message,
            send_pending,
            unsent_message,
        )

        hook = AlgonomyHook(conn_id=self.algonomy_conn_id)
        summary = None
        try:
            summary = send_pending(hook, open_ledger(), logger=self.log, progress_every=self.progress_every)
        finally:  # the sending's outcome is never hidden by a failure to publish it
            touched = sorted(summary.touched if summary else set())
            days = [date.fromisoformat(d) for d in touched if d and d != "None"]
            published = republish(DATASET, days, hook, context, self.log, tolerate_errors=True)
        context["outlet_events"][asset(DATASET)].extra = {"partitions": touched, "published": published}
        if summary.failed or summary.not_sent:
            raise AirflowException(unsent_message(summary))
        recorded = context["ti"].xcom_pull(task_ids=self.requests_task_id) if self.requests_task_id else None
        rejected = list((recorded or {}).get("rejected") or [])
        if rejected:
            raise AirflowFailException(rejected_files_message(rejected))
        return {**summary.as_dict(), "published": published}
