"""The 30-minute rule of Recomendo's ``/v1/train``, held in a ledger every process and host shares.

The ``recomendo_training`` ledger holds, per Recomendo account, its window
(:meth:`TrainingKeys.state`: when ``/v1/train`` was last called, which
training is pending, what the last accepted training covers), one entry per
training (:meth:`TrainingKeys.training`) and one per asking run
(:meth:`TrainingKeys.ask`). Writers (:class:`TrainingGuard`) and readers (the
``recomendo/training_requests`` dataset, the vendorflow page) go through
:class:`TrainingKeys` and :func:`read_training_ledger`, never through the key
text.

:class:`TrainingGuard` decides, inside one write transaction
(``Ledger.exclusive()``, a critical section for every thread, process and,
with a shared ledger, host), whether a request may call ``/v1/train`` now,
and records the call *before* it is made. A request inside the window joins
the one pending training (creating it if there is none) and waits for its due
time; whoever claims it first at that time makes the one call. A call that
may have reached the vendor (even one that failed) starts a new window, so no
sequence of retries, crashes or restarts can put two calls closer than the
window. :func:`carry_out` makes the call a decision allows. No Airflow here.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from vendorflow.vendors.recomendo.events import ACCEPTED, EventKey

if TYPE_CHECKING:
    from vendorflow.ledger import Entry as LedgerEntry
    from vendorflow.ledger import Ledger, LedgerTransaction
    from vendorflow.vendors.recomendo.hook import RecomendoHook

LEDGER = "recomendo_training"

# Statuses of a training entry, and of an ask entry.
PENDING, SENDING, SENT, FAILED, REFUSED = "pending", "sending", "sent", "failed", "refused"
ASKED, SKIPPED = "asked", "skipped"
TRAINING_STATUSES = (PENDING, SENDING, SENT, FAILED, REFUSED)


class TrainingKeys:
    """The keys of the ``recomendo_training`` ledger: built and read only here."""

    _STATE, _TRAINING, _ASK = "state:", "training:", "ask:"

    @staticmethod
    def state(account: str) -> str:
        return f"{TrainingKeys._STATE}{account}"

    @staticmethod
    def training(training_id: str) -> str:
        return f"{TrainingKeys._TRAINING}{training_id}"

    @staticmethod
    def ask(account: str, ask_key: str) -> str:
        return f"{TrainingKeys._ASK}{account}:{ask_key}"

    @staticmethod
    def account_of_state(key: str) -> str | None:
        """The account whose window ``key`` holds, or ``None`` when it is another kind of entry."""
        return key[len(TrainingKeys._STATE) :] if key.startswith(TrainingKeys._STATE) else None

    @staticmethod
    def training_id(key: str) -> str | None:
        return key[len(TrainingKeys._TRAINING) :] if key.startswith(TrainingKeys._TRAINING) else None

    @staticmethod
    def is_ask(key: str) -> bool:
        return key.startswith(TrainingKeys._ASK)


@dataclass(frozen=True)
class TrainingLedgerView:
    """The ledger's entries by kind, for readers: windows by account, trainings by id, every ask."""

    states: dict[str, LedgerEntry]
    trainings: dict[str, LedgerEntry]
    asks: list[LedgerEntry]


def read_training_ledger(ledger: Ledger) -> TrainingLedgerView:
    states: dict[str, Any] = {}
    trainings: dict[str, Any] = {}
    asks = []
    for entry in ledger.entries():
        if (account := TrainingKeys.account_of_state(entry.key)) is not None:
            states[account] = entry
        elif (training_id := TrainingKeys.training_id(entry.key)) is not None:
            trainings[training_id] = entry
        elif TrainingKeys.is_ask(entry.key):
            asks.append(entry)
    return TrainingLedgerView(states, trainings, asks)


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
        return TrainingKeys.state(self.account)

    def ask_entry(self, ask_key: str) -> str:
        return TrainingKeys.ask(self.account, ask_key)

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
                training_id = str(ask.data["training_id"])
                training = tx.get(TrainingKeys.training(training_id))
                if training is not None and training.status == PENDING:
                    return self._claim(tx, state, training_id, now)
                if training is not None and training.status in (SENT, SENDING):
                    return Decision(
                        "done",
                        training_id,
                        message=f"training {training_id} was {training.status} at {_iso(training.data.get('call_at'))}",
                    )
                # failed and nobody re-queued it: ask again below
            pending_id = state.get("pending")
            if pending_id is None:
                if not new_data and ask is None:  # a run whose training failed asks again whatever came since
                    message = f"no event accepted since the last accepted training ({_iso(state.get('covered_until'))})"
                    tx.put(
                        self.ask_entry(ask_key),
                        SKIPPED,
                        {
                            **dict(info or {}),
                            "ask_key": ask_key,
                            "asked_at": now,
                            "training_id": None,
                            "message": message,
                        },
                    )
                    return Decision("skip", message=message)
                pending_id = uuid.uuid4().hex[:16]
                due = max(now, self.earliest(state))
                tx.put(
                    TrainingKeys.training(pending_id),
                    PENDING,
                    {"created_at": now, "due_at": due, "first_ask": ask_key, "asks": 0},
                )
                state["pending"] = pending_id
                tx.put(self.state_key, "ok", state)
            training = tx.get(TrainingKeys.training(pending_id))
            assert training is not None
            data = dict(training.data)
            data["asks"] = int(data.get("asks", 0)) + 1
            tx.put(training.key, training.status, data)
            tx.put(
                self.ask_entry(ask_key),
                ASKED,
                {**dict(info or {}), "ask_key": ask_key, "asked_at": now, "training_id": pending_id},
            )
            return self._claim(tx, state, pending_id, now)

    def claim(self, training_id: str) -> Decision:
        """At (or after) the due time: ``send`` if this caller is the one to make the call."""
        now = self.clock()
        with self.ledger.exclusive() as tx:
            return self._claim(tx, self._state(tx), training_id, now)

    def _claim(self, tx: LedgerTransaction, state: dict[str, Any], training_id: str, now: float) -> Decision:
        training = tx.get(TrainingKeys.training(training_id))
        if training is None:
            return Decision("skip", training_id, message=f"training {training_id} is unknown")
        if training.status != PENDING:
            return Decision(
                "done",
                training_id,
                message=f"training {training_id} was {training.status} at {_iso(training.data.get('call_at'))}",
            )
        due = max(float(training.data.get("due_at", now)), self.earliest(state))
        if now < due:
            if due != training.data.get("due_at"):
                tx.put(training.key, PENDING, {**training.data, "due_at": due})
            return Decision(
                "wait",
                training_id,
                due_at=due,
                message=f"postponed to {_iso(due)} (last call {_iso(state.get('last_call_at'))})",
            )
        # The call is recorded before it is made: whatever happens next, the window starts now.
        tx.put(training.key, SENDING, {**training.data, "call_at": now})
        state.update(last_call_at=now, pending=None)
        tx.put(self.state_key, "ok", state)
        return Decision("send", training_id, message=f"calling /v1/train now (training {training_id})")

    def finish(self, training_id: str, outcome: Literal["sent", "failed"], message: str) -> None:
        with self.ledger.exclusive() as tx:
            training = tx.get(TrainingKeys.training(training_id))
            if training is not None:
                tx.put(training.key, outcome, {**training.data, "message": message[:500], "finished_at": self.clock()})
                if outcome == SENT:
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
            state["last_call_at"] = max(
                float(state.get("last_call_at") or 0), now - self.interval + (retry_after or self.interval)
            )
            training = tx.get(TrainingKeys.training(training_id))
            data = dict(training.data) if training else {}
            pending = state.get("pending")
            if pending and pending != training_id:
                tx.put(
                    TrainingKeys.training(training_id),
                    REFUSED,
                    {**data, "message": message[:500], "merged_into": pending},
                )
                tx.put(self.state_key, "ok", state)
                return self._claim(tx, state, pending, now)
            state["pending"] = training_id
            tx.put(self.state_key, "ok", state)
            tx.put(
                TrainingKeys.training(training_id),
                PENDING,
                {**data, "refused": message[:500], "due_at": self.earliest(state)},
            )
            return self._claim(tx, state, training_id, now)


def latest_accepted_event_at(ledger: Ledger, account: str, since: float | None) -> float | None:
    """When the newest event of ``account`` accepted after ``since`` was recorded (``None``: none)."""
    after = datetime.fromtimestamp(since, timezone.utc) if since is not None else None
    latest = None
    for entry in ledger.entries(updated_since=after):
        if entry.status == ACCEPTED and EventKey.parse(entry.key).account == account:
            latest = max(latest or 0.0, entry.updated_at.timestamp())
    return latest


def carry_out(guard: TrainingGuard, hook: RecomendoHook, decision: Decision, log: logging.Logger) -> Decision:
    """Make the call a ``send`` decision allows, record its outcome, and return what is left to do:
    ``wait`` (a 429 put the training back in the window), ``done`` or ``skip``. A failed call is
    recorded (the window still starts: it may have reached the vendor) and raised."""
    from vendorflow.errors import VendorflowError
    from vendorflow.vendors.recomendo.hook import TrainingRefused

    while decision.action == "send":
        assert decision.training_id is not None
        log.info("%s", decision.message)
        try:
            answer = hook.train()
        except TrainingRefused as exc:
            log.warning("Recomendo refused the training (%s): someone else trained; postponing", exc)
            decision = guard.refused(decision.training_id, str(exc), exc.retry_after)
            continue
        except (VendorflowError, OSError) as exc:
            guard.finish(decision.training_id, FAILED, str(exc))
            raise
        guard.finish(decision.training_id, SENT, str(answer.get("messageCode", "ok")))
        decision = Decision(
            "done", decision.training_id, message=f"training {decision.training_id} sent: {answer.get('messageCode')}"
        )
    return decision


def asked_days(guard: TrainingGuard, ask_key: str) -> set[date]:
    """The days of the asks that share this ask's training (the ``recomendo/training_requests``
    partitions whose rows change with it)."""
    mine = guard.ledger.get(guard.ask_entry(ask_key))
    if mine is None:
        return set()
    days = {datetime.fromtimestamp(float(mine.data["asked_at"]), timezone.utc).date()}
    if mine.data.get("training_id"):
        days |= {
            datetime.fromtimestamp(float(a.data["asked_at"]), timezone.utc).date()
            for a in guard.ledger.with_status(ASKED)
            if a.data.get("training_id") == mine.data["training_id"]
        }
    return days
