"""Leads become Recomendo events, each sent once: the Footprints-to-Recomendo flow, with no Airflow in it.

Every lead of a ``footprints/leads`` partition becomes two events (``$set`` on
the customer, then customer -> offer as the interaction, with the lead's
status); a lead seen later in a new status makes a new interaction event. The
``recomendo_events`` ledger holds one entry per event under its
:class:`EventKey` (account, lead, kind; the interaction's kind names the
status, ``lead@customer``): an accepted event is never sent again, and two
runs fed the same partition never both send one (:func:`claim_events`).
:class:`EventFeed` runs one partition through it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from vendorflow.accounts import DEFAULT as DEFAULT_ACCOUNT

if TYPE_CHECKING:
    from vendorflow.ledger import Ledger
    from vendorflow.progress import Progress
    from vendorflow.vendors.recomendo.hook import RecomendoHook

LEDGER = "recomendo_events"
LEADS = "footprints/leads"
DEFAULT_INTERACTION = "lead"
# Lead columns that describe the customer without identifying them (no e-mail, phone or name).
USER_PROPERTIES = ("location_id", "channel_id")

# Statuses of an event entry: final ones are never sent again.
ACCEPTED, REJECTED, SKIPPED, SENDING, UNSENT = "accepted", "rejected", "skipped", "sending", "unsent"
FINAL = (ACCEPTED, REJECTED, SKIPPED)


@dataclass(frozen=True)
class EventKey:
    """An event's ledger key: ``<account>:<lead_id>:<kind>`` (the kind is ``$set`` or the interaction).

    The account never holds a colon (it is a hash), and the kind never does
    (PredictionIO event names), so a lead id with colons still parses.
    """

    account: str
    lead_id: str
    kind: str

    @property
    def text(self) -> str:
        return f"{self.account}:{self.lead_id}:{self.kind}"

    def kind_of(self, kind: str) -> EventKey:
        return EventKey(self.account, self.lead_id, kind)

    @classmethod
    def parse(cls, text: str) -> EventKey:
        account, _, rest = text.partition(":")
        lead_id, _, kind = rest.rpartition(":")
        return cls(account, lead_id, kind)


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


def interaction_kind(interaction: str, status: str | None) -> str:
    """The ledger kind of a lead's interaction in one status: ``lead@customer`` (``lead`` without a status)."""
    return f"{interaction}@{status}" if status else interaction


def lead_events(
    lead: Mapping[str, Any],
    *,
    account: str,
    interaction: str = DEFAULT_INTERACTION,
    source: str = DEFAULT_ACCOUNT,
) -> list[PlannedEvent]:
    """The events of one lead in its current status: ``$set`` on the customer (once per lead), then
    customer -> offer as item, with the status as a property (once per lead and status).

    The customer is the Footprints client id; its properties are the lead's
    non-personal context. ``$set`` is timed when the lead was created; the
    interaction when its status last changed. A lead seen again in a new status
    (a lookback found it became a customer) makes a new interaction event, under
    its own ledger key: Recomendo's training sees the conversion, and nothing is
    sent twice. A lead of a Footprints account other than ``default`` (``source``) is
    ``<source>/<lead id>`` in its key, so two tenants' leads never share one.
    """
    lead_id = _text(lead.get("lead_id"))
    client_id = _text(lead.get("client_id"))
    offer_id = _text(lead.get("offer_id"))
    status = _text(lead.get("status"))
    when = event_time(lead.get("created_at") if lead.get("created_at") is not None else lead.get("updated_at"))
    # The interaction happens again, with its new status, each time the lead's status changes.
    status_time = event_time(lead.get("status_changed_at")) or when
    base = EventKey(account, str(lead_id) if source == DEFAULT_ACCOUNT else f"{source}/{lead_id}", "")
    missing = [
        name for name, value in (("lead_id", lead_id), ("client_id", client_id), ("created_at", when)) if value is None
    ]
    set_problem = f"lead has no {', '.join(missing)}" if missing else None
    interaction_problem = set_problem or (None if offer_id else "lead has no offer_id")
    properties = {name: value for name in USER_PROPERTIES if (value := _text(lead.get(name))) is not None}
    set_event = {"event": "$set", "entityType": "user", "entityId": client_id, "eventTime": when}
    if properties:
        set_event["properties"] = properties
    interaction_event = {
        "event": interaction,
        "entityType": "user",
        "entityId": client_id,
        "targetEntityType": "item",
        "targetEntityId": offer_id,
        "eventTime": status_time,
    }
    if status:
        interaction_event["properties"] = {"status": status}
    return [
        PlannedEvent(
            base.kind_of("$set").text, lead_id, client_id, None if set_problem else set_event, set_problem, set_event
        ),
        PlannedEvent(
            base.kind_of(interaction_kind(interaction, status)).text,
            lead_id,
            client_id,
            None if interaction_problem else interaction_event,
            interaction_problem,
            interaction_event,
        ),
    ]


def read_leads(root: str, dt: date, account: str = DEFAULT_ACCOUNT) -> Iterator[dict[str, Any]]:
    """The published ``footprints/leads`` partition of ``dt`` of a Footprints account, row by row (row group
    by row group)."""
    import pyarrow.parquet as pq

    from vendorflow.errors import ConfigError
    from vendorflow.pipeline.storage import Lake

    lake = Lake(root)
    path = lake.data_file(LEADS, dt, account)
    if not lake.fs.exists(path):
        which = "" if account == DEFAULT_ACCOUNT else f" of Footprints account {account}"
        raise ConfigError(
            f"{LEADS} has no published partition dt={dt}{which} ({lake.url(path)}): run footprints_leads for that "
            "day first"
        )
    wanted = [
        "lead_id", "client_id", "offer_id", "status", "status_changed_at", "created_at", "updated_at", *USER_PROPERTIES
    ]  # fmt: skip
    with lake.fs.open(path, "rb") as handle:
        parquet = pq.ParquetFile(handle)
        present = [c for c in wanted if c in parquet.schema_arrow.names]
        for group in range(parquet.num_row_groups):
            yield from parquet.read_row_group(group, columns=present).to_pylist()


def leads_dts(context: Mapping[str, Any], explicit: Any = None, source: str | None = None) -> list[date]:
    """Which ``footprints/leads`` partitions (of Footprints account ``source``, when given) a run is for
    (see :func:`vendorflow.operators.runs.asset_dts`)."""
    from vendorflow.operators.runs import asset_dts

    return asset_dts(context, LEADS, explicit, account=source)


def claim_events(
    ledger: Ledger, planned: Sequence[PlannedEvent], run_id: str, now: float, timeout: float = 900.0
) -> list[PlannedEvent]:
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
            if entry is not None and entry.status in FINAL:
                continue
            if entry is not None and entry.status == SENDING:
                owner, claimed_at = entry.data.get("run_id"), float(entry.data.get("claimed_at") or 0)
                if owner != run_id and now - claimed_at < timeout:
                    continue
            tx.put(p.key, SENDING, {"run_id": run_id, "claimed_at": now, "lead_id": p.lead_id})
            mine.append(p)
    return mine


def release_events(ledger: Ledger, planned: Sequence[PlannedEvent], run_id: str) -> int:
    """Give up this run's claims on events that got no outcome (the run is failing)."""
    released = 0
    with ledger.exclusive() as tx:
        for p in planned:
            entry = tx.get(p.key)
            if entry is not None and entry.status == SENDING and entry.data.get("run_id") == run_id:
                tx.put(p.key, UNSENT, {"run_id": run_id, "lead_id": p.lead_id})
                released += 1
    return released


# --- sending one partition ------------------------------------------------------------


@dataclass
class FeedCounts:
    leads: int = 0
    accepted: int = 0
    already_sent: int = 0
    rejected: int = 0
    skipped: int = 0
    in_flight_elsewhere: int = 0

    def add(self, other: FeedCounts) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class EventFeed:
    """Send the events of ``footprints/leads`` partitions to one Recomendo account, each once."""

    hook: RecomendoHook
    ledger: Ledger
    run_id: str
    log: logging.Logger
    interaction: str = DEFAULT_INTERACTION
    claim_timeout: float = 900.0
    name: str = DEFAULT_ACCOUNT  # the Recomendo account's name (vendorflow.accounts), on every record
    account: str = field(init=False)

    def __post_init__(self) -> None:
        from vendorflow.errors import ConfigError

        if not self.interaction or self.interaction.startswith(("$", "pio_")):
            raise ConfigError(f"interaction_event {self.interaction!r} is reserved by PredictionIO ($..., pio_...)")
        self.account = self.hook.account_key

    def feed(self, leads: Iterator[Mapping[str, Any]], day: date, source: str = DEFAULT_ACCOUNT) -> FeedCounts:
        """Plan every lead's events (of Footprints account ``source``), record the ones a lead cannot make,
        claim and send the rest."""
        from vendorflow.progress import Progress

        counts = FeedCounts()
        planned = [
            p
            for lead in leads
            for p in lead_events(lead, account=self.account, interaction=self.interaction, source=source)
        ]
        counts.leads = len(planned) // 2
        known = self.ledger.get_many(p.key for p in planned)
        done = {k for k, e in known.items() if e.status in FINAL}
        counts.already_sent = sum(1 for p in planned if p.key in done and known[p.key].status == ACCEPTED)
        todo = [p for p in planned if p.key not in done]
        skipped = [p for p in todo if p.event is None]
        self.ledger.put_many(
            (
                p.key,
                SKIPPED,
                {
                    "dt": day.isoformat(),
                    "account": self.name,
                    "source_account": source,
                    "lead_id": p.lead_id,
                    "client_id": p.client_id,
                    "event": p.draft,
                    "message": p.problem,
                    "run_id": self.run_id,
                    "sent_at": None,
                },
            )
            for p in skipped
        )
        counts.skipped = len(skipped)
        sendable = claim_events(
            self.ledger, [p for p in todo if p.event is not None], self.run_id, time.time(), self.claim_timeout
        )
        counts.in_flight_elsewhere = len(todo) - len(skipped) - len(sendable)
        self.log.info(
            "%s dt=%s%s: %d events to send, %d already sent, %d skipped, %d being sent by another run",
            LEADS,
            day,
            "" if source == DEFAULT_ACCOUNT else f" account={source}",
            len(sendable),
            len(planned) - len(todo),
            len(skipped),
            counts.in_flight_elsewhere,
        )
        progress = Progress(f"recomendo events dt={day}", log=self.log, unit="events", total=len(sendable))
        try:
            sent = self._send(sendable, day, progress, source)
        except BaseException:
            release_events(self.ledger, sendable, self.run_id)  # another run (a rerun) may send them at once
            raise
        self.log.info("%s", progress.line())
        counts.accepted, counts.rejected = sent[ACCEPTED], sent[REJECTED]
        return counts

    def _send(self, planned: Sequence[PlannedEvent], day: date, progress: Progress, source: str) -> dict[str, int]:
        """Send, recording outcomes in batches no larger than what is in flight anyway: a crash
        loses at most that many records (those events are resent on the rerun)."""
        by_key = {id(p.event): p for p in planned}
        counts = {ACCEPTED: 0, REJECTED: 0}
        buffer: list[tuple[str, str, dict[str, Any]]] = []
        flushed = time.monotonic()

        def flush() -> None:
            nonlocal flushed
            if buffer:
                self.ledger.put_many(buffer)
                buffer.clear()
            flushed = time.monotonic()

        try:
            for outcome in self.hook.send_events(p.event for p in planned if p.event is not None):
                if not (outcome.accepted or outcome.rejected):
                    continue  # failed or never sent: nothing to record, the retry sends it
                p = by_key[id(outcome.event)]
                status = ACCEPTED if outcome.accepted else REJECTED
                counts[status] += 1
                buffer.append(
                    (
                        p.key,
                        status,
                        {
                            "dt": day.isoformat(),
                            "account": self.name,
                            "source_account": source,
                            "lead_id": p.lead_id,
                            "client_id": p.client_id,
                            "event": p.event,
                            "event_id": outcome.event_id,
                            "message": outcome.error,
                            "run_id": self.run_id,
                            "sent_at": datetime.now(timezone.utc).isoformat(),
                        },
                    )
                )
                progress.advance(1)
                if len(buffer) >= self.hook.concurrency or time.monotonic() - flushed > 0.5:
                    flush()
        finally:
            flush()
        return counts
