"""Airflow adapters for Recomendo: the event feed, the training request and the usage report.

The work itself is in :mod:`~vendorflow.vendors.recomendo.events` (leads to
events, each sent once) and :mod:`~vendorflow.vendors.recomendo.training` (the
30-minute rule); these classes take arguments, read the run and call them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from vendorflow.assets import asset
from vendorflow.operators.dataset import DatasetOperator
from vendorflow.vendors.recomendo.events import DEFAULT_INTERACTION

if TYPE_CHECKING:
    from vendorflow.vendors.recomendo.hook import RecomendoHook
    from vendorflow.vendors.recomendo.training import Decision, TrainingGuard

EVENTS_SENT = "recomendo/events_sent"
TRAINING_REQUESTS = "recomendo/training_requests"


def _hook(conn_id: str | None, account: str) -> RecomendoHook:
    from vendorflow import accounts
    from vendorflow.vendors.recomendo.hook import RecomendoHook

    return RecomendoHook(conn_id=accounts.conn_id("recomendo", account, conn_id))


class RecomendoEventsOperator(BaseOperator):
    """Turn the leads of ``footprints/leads`` partitions of the Footprints accounts that feed a Recomendo
    account into events and send each once (:class:`~vendorflow.vendors.recomendo.events.EventFeed`);
    every outcome is in ``recomendo/events_sent`` (partition = the leads' ``dt``).

    :param account: the Recomendo account; the Footprints accounts it takes leads from are configured
        (:meth:`vendorflow.accounts.Account.fed_by`).
    :param dt: the leads partition(s), ``YYYY-MM-DD`` or a list (templated); by
        default the triggering asset events' partitions, else the run's day.
    :param interaction_event: the name of the customer -> offer event (``lead``).
    """

    template_fields = ("account", "conn_id", "dt", "interaction_event")
    ui_color = "#f3e8f4"

    def __init__(
        self,
        *,
        account: str = "default",
        conn_id: str | None = None,
        dt: Any = None,
        interaction_event: str = DEFAULT_INTERACTION,
        claim_timeout: float = 900.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [asset(EVENTS_SENT)])
        super().__init__(**kwargs)
        self.account, self.conn_id, self.dt, self.interaction_event, self.claim_timeout = (
            account,
            conn_id,
            dt,
            interaction_event,
            claim_timeout,
        )

    def execute(self, context: Any) -> dict[str, Any]:
        from vendorflow import accounts, settings
        from vendorflow.ledger import Ledger
        from vendorflow.operators.runs import republish
        from vendorflow.vendors.recomendo.events import LEDGER, EventFeed, FeedCounts, leads_dts, read_leads

        hook = _hook(self.conn_id, self.account)
        feed = EventFeed(hook, Ledger(LEDGER), str(context.get("run_id")), self.log, self.interaction_event,
                         self.claim_timeout, self.account)  # fmt: skip
        sources = accounts.get("recomendo", self.account).fed_by("footprints")
        if not sources:
            self.log.warning("Recomendo account %s takes leads from no Footprints account: name them in its "
                             '"footprints" list in VENDORFLOW_ACCOUNTS', self.account)  # fmt: skip
        totals, days = FeedCounts(), set()
        for source in sources:
            for day in leads_dts(context, self.dt, source):
                totals.add(feed.feed(read_leads(settings.data_root(), day, source), day, source))
                days.add(day)
        published = republish(EVENTS_SENT, days, hook, context, self.log, account=self.account)
        summary = {
            "dts": [d.isoformat() for d in sorted(days)],
            "footprints_accounts": list(sources),
            **vars(totals),
            "partitions": [p["path"] for p in published],
        }
        if totals.rejected:
            self.log.warning(
                "%d events were rejected by Recomendo (see %s, status 'rejected')", totals.rejected, EVENTS_SENT
            )
        self.log.info("recomendo events: %s", summary)
        return summary


class RecomendoTrainingOperator(BaseOperator):
    """Request a Recomendo training under the 30-minute rule
    (:class:`~vendorflow.vendors.recomendo.training.TrainingGuard`), deferred while inside it.

    Skips when no event was accepted since the last accepted training. A request
    inside the window joins the pending training and defers to a
    :class:`DateTimeTrigger` at its due time (no worker slot held); then the first
    waiting run to claim it calls ``/v1/train`` and the others finish. The window is
    the connection's ``training_interval_seconds`` (1800) plus ``training_margin_seconds`` (5).
    """

    template_fields = ("account", "conn_id", "dt")
    ui_color = "#f3e8f4"

    def __init__(self, *, account: str = "default", conn_id: str | None = None, dt: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("outlets", [asset(TRAINING_REQUESTS)])
        super().__init__(**kwargs)
        self.account, self.conn_id, self.dt = account, conn_id, dt

    def execute(self, context: Any) -> dict[str, Any]:
        from vendorflow.ledger import Ledger
        from vendorflow.operators.runs import run_key
        from vendorflow.vendors.recomendo import events
        from vendorflow.vendors.recomendo.training import latest_accepted_event_at

        hook, guard = self._guard()
        new_data = latest_accepted_event_at(Ledger(events.LEDGER), hook.account_key, guard.covered_until()) is not None
        info = {
            "account": self.account,
            "run_id": str(context.get("run_id")),
            "dts": [d.isoformat() for d in events.leads_dts(context, self.dt)],
        }
        return self._act(context, hook, guard, guard.request(run_key(context), info, new_data=new_data))

    def execute_complete(self, context: Any, event: Any = None, training_id: str | None = None) -> dict[str, Any]:
        from vendorflow.operators.runs import run_key

        hook, guard = self._guard()
        if not training_id:  # ``dag.test`` replaces the deferral's kwargs by the event: the ask knows its training
            ask = guard.ledger.get(guard.ask_entry(run_key(context)))
            training_id = ask.data.get("training_id") if ask else None
        return self._act(context, hook, guard, guard.claim(str(training_id)))

    def _guard(self) -> tuple[RecomendoHook, TrainingGuard]:
        from vendorflow.ledger import Ledger
        from vendorflow.vendors.recomendo.training import LEDGER, TrainingGuard

        hook = _hook(self.conn_id, self.account)
        return hook, TrainingGuard(Ledger(LEDGER), hook.account_key, hook.training_interval, hook.training_margin)

    def _act(self, context: Any, hook: RecomendoHook, guard: TrainingGuard, decision: Decision) -> dict[str, Any]:
        from vendorflow.operators.runs import republish, run_key
        from vendorflow.vendors.recomendo.training import asked_days, carry_out

        try:
            decision = carry_out(guard, hook, decision, self.log)
        finally:  # the rows of this training's asks changed, whatever happened
            days = asked_days(guard, run_key(context))
            republish(TRAINING_REQUESTS, days, hook, context, self.log, account=self.account)
        if decision.action == "wait":
            from airflow.providers.standard.triggers.temporal import DateTimeTrigger

            assert decision.due_at is not None
            self.log.info("Training %s %s; deferring", decision.training_id, decision.message)
            self.defer(
                trigger=DateTimeTrigger(moment=datetime.fromtimestamp(decision.due_at, timezone.utc)),
                method_name="execute_complete",
                kwargs={"training_id": decision.training_id},
            )
        self.log.info("%s", decision.message)
        return {"action": decision.action, "training_id": decision.training_id, "message": decision.message}


class RecomendoUsageOperator(DatasetOperator):
    """``recomendo/usage`` for the run's day, plus the quota status in the task log and on the
    asset event (``extra["quota"]``): ``remaining_quota``, ``monthly_quota``, ``remaining_share`` and
    ``quota_warning`` (true under the connection's ``quota_warning_share``, default 0.1).

    :param until_rollover: the month-end capture: for the last day of a month, keep reading the report
        until the month rolls over and publish the last read before it (skipped for any other day).
    """

    def __init__(self, *, until_rollover: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("dataset", "recomendo/usage")
        if until_rollover:
            kwargs["extract_params"] = {**(kwargs.get("extract_params") or {}), "until_rollover": True}
        super().__init__(**kwargs)

    def execute(self, context: Any) -> dict[str, Any]:
        from vendorflow import settings
        from vendorflow.pipeline.storage import Lake

        result = super().execute(context)
        manifest = Lake(settings.data_root()).read_manifest(self.dataset, result["dt"], self.account) or {}
        facts = manifest.get("parameters") or {}
        keys = ("remaining_quota", "monthly_quota", "remaining_share", "quota_warning", "quota_warning_share", "as_of")
        result = {**result, "quota": {k: facts.get(k) for k in keys}}
        context["outlet_events"][asset(self.dataset)].extra = result
        return result
