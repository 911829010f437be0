"""Feeding Recomendo: leads become events (each sent once), then a training request under the 30-minute rule.

Two durable ledgers (:class:`vendorflow.ledger.Ledger`) make both steps safe to
retry, rerun and run concurrently:

- ``recomendo_events``: one entry per event, keyed by account, lead and kind.
  An accepted event is never sent again.
- ``recomendo_training``: the account's window (``state:<account>``: when
  ``/v1/train`` was last called, which training is pending), one entry per
  training (``training:<id>``) and one per asking run (``ask:<key>``).

:class:`TrainingGuard` decides, inside one SQLite write transaction
(``Ledger.exclusive()``, a critical section for every thread and process that
shares the ledger), whether a request may call ``/v1/train`` now, and records
the call *before* it is made. A request inside the window joins the one
pending training (creating it if there is none) and waits for its due time;
whoever claims it first at that time makes the one call. A call that may have
reached the vendor (even one that failed) starts a new window, so no sequence
of retries, crashes or restarts can put two calls closer than the window.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

from vendorflow.assets import asset
from vendorflow.vendors.recomendo.datasets import EVENTS_LEDGER, TRAINING_LEDGER
from vendorflow.operators.dataset import DatasetOperator

if TYPE_CHECKING:
    from vendorflow.vendors.recomendo.hook import RecomendoHook
    from vendorflow.ledger import Ledger, LedgerTransaction

log = logging.getLogger(__name__)

LEADS = "footprints/leads"
DEFAULT_INTERACTION = "lead"
# Lead columns that describe the customer without identifying them (SPEC section 3).
USER_PROPERTIES = ("location_id", "channel_id")


# --- leads -> events ------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    try:
        if value != value:  # NaN from a pandas-free reader is still possible
            return None
    except Exception:  # pragma: no cover - exotic values compare fine
        pass
    text = str(value).strip()
    return text or None


def event_time(value: Any) -> str | None:
    """An instant as PredictionIO's ISO 8601 with milliseconds and ``Z``."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        moment = moment.astimezone(timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return None


@dataclass(frozen=True)
class PlannedEvent:
    key: str
    lead_id: str | None
    client_id: str | None
    event: dict[str, Any] | None  # None: the lead cannot become this event (see ``problem``)
    problem: str | None = None
    draft: dict[str, Any] = field(default_factory=dict)  # the event as far as the lead allows, for the record


def lead_events(lead: Mapping[str, Any], *, account: str, interaction: str = DEFAULT_INTERACTION) -> list[PlannedEvent]:
    """The two events of one lead: ``$set`` on the customer, then customer -> offer as item.

    The customer is the Footprints client id; its properties are the lead's
    non-personal context; the time is when the lead was created.
    """
    lead_id = _text(lead.get("lead_id"))
    client_id = _text(lead.get("client_id"))
    offer_id = _text(lead.get("offer_id"))
    when = event_time(lead.get("created_at") if lead.get("created_at") is not None else lead.get("updated_at"))
    base = f"{account}:{lead_id}"
    missing = [name for name, value in (("lead_id", lead_id), ("client_id", client_id), ("created_at", when)) if value is None]
    set_problem = f"lead has no {', '.join(missing)}" if missing else None
    interaction_problem = set_problem or (None if offer_id else "lead has no offer_id")
    properties = {name: value for name in USER_PROPERTIES if (value := _text(lead.get(name))) is not None}
    set_event = {"event": "$set", "entityType": "user", "entityId": client_id, "eventTime": when}
    if properties:
        set_event["properties"] = properties
    interaction_event = {
        "event": interaction, "entityType": "user", "entityId": client_id,
        "targetEntityType": "item", "targetEntityId": offer_id, "eventTime": when,
    }
    return [
        PlannedEvent(f"{base}:$set", lead_id, client_id, None if set_problem else set_event, set_problem, set_event),
        PlannedEvent(f"{base}:{interaction}", lead_id, client_id, None if interaction_problem else interaction_event,
                     interaction_problem, interaction_event),
    ]


def read_leads(root: str, dt: date) -> Iterator[dict[str, Any]]:
    """The published ``footprints/leads`` partition of ``dt``, row by row (row group by row group)."""
    import pyarrow.parquet as pq

    from vendorflow.errors import ConfigError
    from vendorflow.pipeline.storage import DATA_FILE, Lake

    lake = Lake(root)
    path = f"{lake.partition_path(LEADS, dt)}/{DATA_FILE}"
    if not lake.fs.exists(path):
        raise ConfigError(f"{LEADS} has no published partition dt={dt} ({lake.url(path)}): run footprints_leads for that day first")
    wanted = ["lead_id", "client_id", "offer_id", "created_at", "updated_at", *USER_PROPERTIES]
    with lake.fs.open(path, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        present = [c for c in wanted if c in parquet.schema_arrow.names]
        for group in range(parquet.num_row_groups):
            yield from parquet.read_row_group(group, columns=present).to_pylist()


def leads_dts(context: Mapping[str, Any], explicit: Any = None) -> list[date]:
    """Which ``footprints/leads`` partitions this run is for.

    An explicit ``dt`` (a date or a list of dates, from the run's conf) wins;
    else every triggering ``footprints/leads`` asset event's ``dt`` (several when
    the scheduler folded events into one run); else the run's logical date; else
    the day it ran (asset-triggered runs have no logical date in Airflow 3).
    """
    from vendorflow.errors import ConfigError

    if isinstance(explicit, str) and explicit.strip() in ("", "None", "[]"):
        explicit = None
    if explicit not in (None, "", []):
        # A list rendered by a template arrives as its text: "['2024-03-01', '2024-03-02']".
        values = explicit if isinstance(explicit, (list, tuple)) else [v.strip(" '\"") for v in str(explicit).strip("[] ").split(",")]
        try:
            return sorted({date.fromisoformat(str(v).strip()[:10]) for v in values})
        except ValueError:
            raise ConfigError(f"dt must be a date as YYYY-MM-DD or a list of them, not {explicit!r}") from None
    found: set[date] = set()
    events = context.get("triggering_asset_events") or {}
    for key in list(events):
        for event in events[key]:
            name = getattr(getattr(event, "asset", None), "name", None)
            extra = getattr(event, "extra", None) or {}
            if name == LEADS and extra.get("dt"):
                found.add(date.fromisoformat(str(extra["dt"])[:10]))
    if found:
        return sorted(found)
    logical = context.get("logical_date")
    if logical is not None:
        return [logical.date()]
    run = context.get("dag_run")
    ran = getattr(run, "run_after", None) or datetime.now(timezone.utc)
    return [ran.date()]


def claim_events(ledger: Ledger, planned: Sequence[PlannedEvent], run_id: str, now: float, timeout: float = 900.0) -> list[PlannedEvent]:
    """The events this run may send, claimed in one write transaction.

    Two runs fed the same partition (a rerun of Footprints while a run is still
    sending) must not both send an event: each event not yet recorded is
    claimed (``sending``, with the run id) before it is sent. A run sends what
    is unclaimed, what it claimed itself (its own retry), and what another run
    claimed more than ``timeout`` seconds ago without an outcome (that run died).
    """
    mine = []
    with ledger.exclusive() as tx:
        for p in planned:
            entry = tx.get(p.key)
            if entry is not None and entry.status in ("accepted", "rejected", "skipped"):
                continue
            if entry is not None and entry.status == "sending":
                owner, claimed_at = entry.data.get("run_id"), float(entry.data.get("claimed_at") or 0)
                if owner != run_id and now - claimed_at < timeout:
                    continue
            tx.put(p.key, "sending", {"run_id": run_id, "claimed_at": now, "lead_id": p.lead_id})
            mine.append(p)
    return mine


def release_events(ledger: Ledger, planned: Sequence[PlannedEvent], run_id: str) -> int:
    """Give up this run's claims on events that got no outcome (the run is failing)."""
    released = 0
    with ledger.exclusive() as tx:
        for p in planned:
            entry = tx.get(p.key)
            if entry is not None and entry.status == "sending" and entry.data.get("run_id") == run_id:
                tx.put(p.key, "unsent", {"run_id": run_id, "lead_id": p.lead_id})
                released += 1
    return released


# --- the training guard ---------------------------------------------------------------


Action = Literal["send", "wait", "done", "skip"]


@dataclass(frozen=True)
class Decision:
    action: Action
    training_id: str | None = None
    due_at: float | None = None  # epoch seconds, for "wait"
    message: str = ""


def _iso(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds") if epoch is not None else "never"


@dataclass
class TrainingGuard:
    """The 30-minute rule of one Recomendo account, held in a ledger shared by every process."""

    ledger: Ledger
    account: str
    interval: float = 1800.0
    margin: float = 0.0
    clock: Callable[[], float] = field(default=time.time)

    @property
    def state_key(self) -> str:
        return f"state:{self.account}"

    def ask_entry(self, ask_key: str) -> str:
        return f"ask:{self.account}:{ask_key}"

    def _state(self, tx: LedgerTransaction) -> dict[str, Any]:
        entry = tx.get(self.state_key)
        return dict(entry.data) if entry else {}

    def earliest(self, state: Mapping[str, Any]) -> float:
        last = state.get("last_call_at")
        return float(last) + self.interval + self.margin if last is not None else 0.0

    def last_call_at(self) -> float | None:
        entry = self.ledger.get(self.state_key)
        value = entry.data.get("last_call_at") if entry else None
        return float(value) if value is not None else None

    def covered_until(self) -> float | None:
        """When the last training that Recomendo accepted was called: data older than that is trained on."""
        entry = self.ledger.get(self.state_key)
        value = entry.data.get("covered_until") if entry else None
        return float(value) if value is not None else None

    def request(self, ask_key: str, info: Mapping[str, Any] | None = None, *, new_data: bool = True) -> Decision:
        """Ask for a training: ``send`` now (the call is already recorded), ``wait`` until ``due_at``
        (joined to the one pending training), ``done`` (this ask's training was already made) or
        ``skip`` (``new_data`` is false: nothing was accepted since the last accepted training)."""
        now = self.clock()
        with self.ledger.exclusive() as tx:
            state = self._state(tx)
            ask = tx.get(self.ask_entry(ask_key))
            if ask is not None:  # a retry of the same run: follow its training
                training = tx.get(f"training:{ask.data['training_id']}")
                if training is not None and training.status == "pending":
                    return self._claim(tx, state, training.key[9:], now)
                if training is not None and training.status in ("sent", "sending"):
                    return Decision("done", training.key[9:], message=f"training {training.key[9:]} was {training.status} at {_iso(training.data.get('call_at'))}")
                # failed and nobody re-queued it: ask again below
            pending_id = state.get("pending")
            if pending_id is None:
                if not new_data and ask is None:  # a run whose training failed asks again whatever came since
                    message = f"no event accepted since the last accepted training ({_iso(state.get('covered_until'))})"
                    tx.put(self.ask_entry(ask_key), "skipped", {**dict(info or {}), "ask_key": ask_key, "asked_at": now, "training_id": None, "message": message})
                    return Decision("skip", message=message)
                pending_id = uuid.uuid4().hex[:16]
                due = max(now, self.earliest(state))
                tx.put(f"training:{pending_id}", "pending", {"created_at": now, "due_at": due, "first_ask": ask_key, "asks": 0})
                state["pending"] = pending_id
                tx.put(self.state_key, "ok", state)
            training = tx.get(f"training:{pending_id}")
            assert training is not None
            data = dict(training.data)
            data["asks"] = int(data.get("asks", 0)) + 1
            tx.put(training.key, training.status, data)
            tx.put(self.ask_entry(ask_key), "asked", {**dict(info or {}), "ask_key": ask_key, "asked_at": now, "training_id": pending_id})
            return self._claim(tx, state, pending_id, now)

    def claim(self, training_id: str) -> Decision:
        """At (or after) the due time: ``send`` if this caller is the one to make the call."""
        now = self.clock()
        with self.ledger.exclusive() as tx:
            return self._claim(tx, self._state(tx), training_id, now)

    def _claim(self, tx: LedgerTransaction, state: dict[str, Any], training_id: str, now: float) -> Decision:
        training = tx.get(f"training:{training_id}")
        if training is None:
            return Decision("skip", training_id, message=f"training {training_id} is unknown")
        if training.status != "pending":
            return Decision("done", training_id, message=f"training {training_id} was {training.status} at {_iso(training.data.get('call_at'))}")
        due = max(float(training.data.get("due_at", now)), self.earliest(state))
        if now < due:
            if due != training.data.get("due_at"):
                tx.put(training.key, "pending", {**training.data, "due_at": due})
            return Decision("wait", training_id, due_at=due, message=f"postponed to {_iso(due)} (last call {_iso(state.get('last_call_at'))})")
        # The call is recorded before it is made: whatever happens next, the window starts now.
        tx.put(training.key, "sending", {**training.data, "call_at": now})
        state.update(last_call_at=now, pending=None)
        tx.put(self.state_key, "ok", state)
        return Decision("send", training_id, message=f"calling /v1/train now (training {training_id})")

    def finish(self, training_id: str, outcome: Literal["sent", "failed"], message: str) -> None:
        with self.ledger.exclusive() as tx:
            training = tx.get(f"training:{training_id}")
            if training is not None:
                tx.put(training.key, outcome, {**training.data, "message": message[:500], "finished_at": self.clock()})
                if outcome == "sent":
                    state = self._state(tx)
                    call_at = float(training.data.get("call_at") or 0)
                    state["covered_until"] = max(call_at, float(state.get("covered_until") or 0))
                    tx.put(self.state_key, "ok", state)

    def refused(self, training_id: str, message: str, retry_after: float | None = None) -> Decision:
        """The vendor answered 429 (someone else trained): the window restarts now, and the
        training waits again (or joins a training that became pending meanwhile)."""
        now = self.clock()
        with self.ledger.exclusive() as tx:
            state = self._state(tx)
            state["last_call_at"] = max(float(state.get("last_call_at") or 0), now - self.interval + (retry_after or self.interval))
            training = tx.get(f"training:{training_id}")
            data = dict(training.data) if training else {}
            pending = state.get("pending")
            if pending and pending != training_id:
                tx.put(f"training:{training_id}", "refused", {**data, "message": message[:500], "merged_into": pending})
                tx.put(self.state_key, "ok", state)
                return self._claim(tx, state, pending, now)
            state["pending"] = training_id
            tx.put(self.state_key, "ok", state)
            tx.put(f"training:{training_id}", "pending", {**data, "refused": message[:500], "due_at": self.earliest(state)})
            return self._claim(tx, state, training_id, now)


def latest_accepted_event_at(ledger: Ledger, account: str, since: float | None) -> float | None:
    """When the newest event of ``account`` accepted after ``since`` was recorded (``None``: none)."""
    after = datetime.fromtimestamp(since, timezone.utc) if since is not None else None
    latest = None
    for entry in ledger.entries(updated_since=after):
        if entry.status == "accepted" and entry.key.startswith(f"{account}:"):
            latest = max(latest or 0.0, entry.updated_at.timestamp())
    return latest


# --- operators ------------------------------------------------------------------------


def _ask_key(context: Mapping[str, Any]) -> str:
    """One ask per DAG run: the run's retries and its return from deferral are the same ask."""
    dag = context.get("dag")
    return f"{dag.dag_id}/{context['run_id']}" if dag is not None else str(context["run_id"])


def _hook(conn_id: str | None) -> RecomendoHook:
    from vendorflow.vendors.recomendo.hook import RecomendoHook

    return RecomendoHook(conn_id=conn_id)


def _publish(dataset: str, days: Iterable[date], hook: Any, context: Mapping[str, Any], logger: logging.Logger) -> list[dict[str, Any]]:
    from vendorflow import datasets
    from vendorflow.pipeline.run import run_dataset

    spec = datasets.get(dataset)
    ti = context.get("ti")
    results = []
    for day in sorted(set(days)):
        result = run_dataset(spec, hook=hook, dt=day, run_id=str(context.get("run_id")), try_number=getattr(ti, "try_number", None), logger=logger)
        results.append(result.as_dict())
    if results:
        context["outlet_events"][asset(dataset)].extra = {"partitions": results, "dt": results[-1]["dt"], "rows": sum(r["rows"] for r in results)}
    return results


class RecomendoEventsOperator(BaseOperator):
    """Turn the new leads of ``footprints/leads`` partitions into Recomendo events and send each once.

    Already accepted events (by key: account, lead, kind) are not sent again, so
    a retry or rerun resends nothing the vendor accepted. Every outcome is in
    ``recomendo/events_sent`` (partition = the leads' ``dt``).

    :param dt: the leads partition(s), ``YYYY-MM-DD`` or a list (templated); by
        default the triggering asset events' partitions, else the logical date.
    :param interaction_event: the name of the customer -> offer event (``lead``).
    """

    template_fields = ("conn_id", "dt", "interaction_event")
    ui_color = "#f3e8f4"

    def __init__(
        self, *, conn_id: str | None = None, dt: Any = None, interaction_event: str = DEFAULT_INTERACTION,
        claim_timeout: float = 900.0, **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [asset("recomendo/events_sent")])
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.dt = dt
        self.interaction_event = interaction_event
        self.claim_timeout = claim_timeout

    def execute(self, context: Any) -> dict[str, Any]:
        from vendorflow import settings
        from vendorflow.errors import ConfigError
        from vendorflow.ledger import Ledger
        from vendorflow.progress import Progress

        if not self.interaction_event or self.interaction_event.startswith(("$", "pio_")):
            raise ConfigError(f"interaction_event {self.interaction_event!r} is reserved by PredictionIO ($..., pio_...)")
        hook = _hook(self.conn_id)
        account = hook.account_key
        days = leads_dts(context, self.dt)
        ledger = Ledger(EVENTS_LEDGER)
        run_id = str(context.get("run_id"))
        totals = {"leads": 0, "accepted": 0, "already_sent": 0, "rejected": 0, "skipped": 0, "in_flight_elsewhere": 0}
        for day in days:
            planned = [p for lead in read_leads(settings.data_root(), day) for p in lead_events(lead, account=account, interaction=self.interaction_event)]
            totals["leads"] += len(planned) // 2
            known = ledger.get_many(p.key for p in planned)
            done = {k for k, e in known.items() if e.status in ("accepted", "rejected", "skipped")}
            totals["already_sent"] += sum(1 for p in planned if p.key in done and known[p.key].status == "accepted")
            todo = [p for p in planned if p.key not in done]
            skipped = [p for p in todo if p.event is None]
            now = datetime.now(timezone.utc).isoformat()
            ledger.put_many((p.key, "skipped", {"dt": day.isoformat(), "lead_id": p.lead_id, "client_id": p.client_id,
                                                "event": p.draft, "message": p.problem, "run_id": run_id, "sent_at": None}) for p in skipped)
            totals["skipped"] += len(skipped)
            sendable = claim_events(ledger, [p for p in todo if p.event is not None], run_id, time.time(), self.claim_timeout)
            elsewhere = len(todo) - len(skipped) - len(sendable)
            totals["in_flight_elsewhere"] += elsewhere
            self.log.info("footprints/leads dt=%s: %d events to send, %d already sent, %d skipped, %d being sent by another run",
                          day, len(sendable), len(planned) - len(todo), len(skipped), elsewhere)
            progress = Progress(f"recomendo events dt={day}", log=self.log, unit="events", total=len(sendable))
            try:
                counts = self._send(hook, ledger, sendable, day, run_id, progress)
            except BaseException:
                release_events(ledger, sendable, run_id)  # another run (a rerun) may send them at once
                raise
            self.log.info("%s", progress.line())
            for key in ("accepted", "rejected"):
                totals[key] += counts[key]
        published = _publish("recomendo/events_sent", days, hook, context, self.log)
        summary = {"dts": [d.isoformat() for d in days], **totals, "partitions": [p["path"] for p in published]}
        if totals["rejected"]:
            self.log.warning("%d events were rejected by Recomendo (see recomendo/events_sent, status 'rejected')", totals["rejected"])
        self.log.info("recomendo events: %s", summary)
        return summary

    def _send(self, hook: RecomendoHook, ledger: Ledger, planned: Sequence[PlannedEvent], day: date, run_id: str, progress: Any) -> dict[str, int]:
        """Send, recording outcomes in batches no larger than what is in flight anyway: a crash
        loses at most that many records (those events are resent on the rerun)."""
        by_key = {id(p.event): p for p in planned}
        counts = {"accepted": 0, "rejected": 0}
        buffer: list[tuple[str, str, dict[str, Any]]] = []
        flushed = time.monotonic()

        def flush() -> None:
            nonlocal flushed
            if buffer:
                ledger.put_many(buffer)
                buffer.clear()
            flushed = time.monotonic()

        try:
            for outcome in hook.send_events((p.event for p in planned if p.event is not None)):
                if not (outcome.accepted or outcome.rejected):
                    continue  # failed or never sent: nothing to record, the retry sends it
                p = by_key[id(outcome.event)]
                status = "accepted" if outcome.accepted else "rejected"
                counts[status] += 1
                buffer.append((p.key, status, {
                    "dt": day.isoformat(), "lead_id": p.lead_id, "client_id": p.client_id, "event": p.event,
                    "event_id": outcome.event_id, "message": outcome.error, "run_id": run_id,
                    "sent_at": datetime.now(timezone.utc).isoformat(),
                }))
                progress.advance(1)
                if len(buffer) >= hook.concurrency or time.monotonic() - flushed > 0.5:
                    flush()
        finally:
            flush()
        return counts


class RecomendoTrainingOperator(BaseOperator):
    """Request a Recomendo training under the 30-minute rule, waiting deferred when inside it.

    Skips when no event was accepted since the last ``/v1/train`` call. A
    request inside the window joins the pending training and defers to a
    :class:`DateTimeTrigger` at its due time (no worker slot held); at that time
    the first waiting run to claim it calls ``/v1/train`` and the others finish.
    The window is the connection's ``training_interval_seconds`` (1800) plus
    ``training_margin_seconds`` (5). Writes ``recomendo/training_requests``.
    """

    template_fields = ("conn_id", "dt")
    ui_color = "#f3e8f4"

    def __init__(self, *, conn_id: str | None = None, dt: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("outlets", [asset("recomendo/training_requests")])
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.dt = dt

    def _guard(self, hook: RecomendoHook) -> TrainingGuard:
        from vendorflow.ledger import Ledger

        return TrainingGuard(Ledger(TRAINING_LEDGER), hook.account_key, hook.training_interval, hook.training_margin)

    def execute(self, context: Any) -> dict[str, Any]:
        from vendorflow.ledger import Ledger

        hook = _hook(self.conn_id)
        guard = self._guard(hook)
        new_data = latest_accepted_event_at(Ledger(EVENTS_LEDGER), hook.account_key, guard.covered_until()) is not None
        info = {"run_id": str(context.get("run_id")), "dts": [d.isoformat() for d in leads_dts(context, self.dt)]}
        decision = guard.request(_ask_key(context), info, new_data=new_data)
        return self._act(context, hook, guard, decision)

    def execute_complete(self, context: Any, event: Any = None, training_id: str | None = None) -> dict[str, Any]:
        hook = _hook(self.conn_id)
        guard = self._guard(hook)
        if not training_id:  # ``dag.test`` replaces the deferral's kwargs by the event: the ask knows its training
            ask = guard.ledger.get(guard.ask_entry(_ask_key(context)))
            training_id = ask.data.get("training_id") if ask else None
        return self._act(context, hook, guard, guard.claim(str(training_id)))

    def _act(self, context: Any, hook: RecomendoHook, guard: TrainingGuard, decision: Decision) -> dict[str, Any]:
        from vendorflow.errors import VendorflowError
        from vendorflow.vendors.recomendo.hook import TrainingRefused

        while decision.action == "send":
            assert decision.training_id is not None
            self.log.info("%s", decision.message)
            try:
                answer = hook.train()
            except TrainingRefused as exc:
                self.log.warning("Recomendo refused the training (%s): someone else trained; postponing", exc)
                decision = guard.refused(decision.training_id, str(exc), exc.retry_after)
                continue
            except (VendorflowError, OSError) as exc:
                guard.finish(decision.training_id, "failed", str(exc))
                self._publish(context, hook, guard)
                raise
            guard.finish(decision.training_id, "sent", str(answer.get("messageCode", "ok")))
            decision = Decision("done", decision.training_id, message=f"training {decision.training_id} sent: {answer.get('messageCode')}")
        if decision.action == "wait":
            from airflow.providers.standard.triggers.temporal import DateTimeTrigger

            assert decision.due_at is not None
            self._publish(context, hook, guard)
            self.log.info("Training %s %s; deferring", decision.training_id, decision.message)
            self.defer(
                trigger=DateTimeTrigger(moment=datetime.fromtimestamp(decision.due_at, timezone.utc)),
                method_name="execute_complete",
                kwargs={"training_id": decision.training_id},
            )
        self.log.info("%s", decision.message)
        self._publish(context, hook, guard)
        return {"action": decision.action, "training_id": decision.training_id, "message": decision.message}

    def _publish(self, context: Any, hook: RecomendoHook, guard: TrainingGuard) -> None:
        """Rebuild the partitions that hold this training's asks (their rows' status changed)."""
        mine = guard.ledger.get(guard.ask_entry(_ask_key(context)))
        if mine is None:
            return
        days = {datetime.fromtimestamp(float(mine.data["asked_at"]), timezone.utc).date()}
        if mine.data.get("training_id"):
            days |= {datetime.fromtimestamp(float(a.data["asked_at"]), timezone.utc).date()
                     for a in guard.ledger.with_status("asked") if a.data.get("training_id") == mine.data["training_id"]}
        _publish("recomendo/training_requests", days, hook, context, self.log)


class RecomendoUsageOperator(DatasetOperator):
    """``recomendo/usage`` for the logical date, plus the quota status in the task log and on the
    asset event (``extra["quota"]``): ``remaining_quota``, ``monthly_quota``, ``remaining_share`` and
    ``quota_warning`` (true under the connection's ``quota_warning_share``, default 0.1)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("dataset", "recomendo/usage")
        super().__init__(**kwargs)

    def execute(self, context: Any) -> dict[str, Any]:
        from vendorflow import settings
        from vendorflow.pipeline.storage import Lake

        result = super().execute(context)
        manifest = Lake(settings.data_root()).read_manifest(self.dataset, result["dt"]) or {}
        parameters = manifest.get("parameters") or {}
        keys = ("remaining_quota", "monthly_quota", "remaining_share", "quota_warning", "quota_warning_share", "as_of")
        quota = {k: parameters.get(k) for k in keys}
        result = {**result, "quota": quota}
        context["outlet_events"][asset(self.dataset)].extra = result
        return result
