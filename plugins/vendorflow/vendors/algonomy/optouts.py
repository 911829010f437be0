"""The opt-out ledger and the sender: no request is ever lost, and no accepted one is sent again.

The ``algonomy_optouts`` ledger holds one entry per account and user id (the
key is :func:`ledger_key`: the id itself for the ``default`` account, as before
accounts, ``<account>/<id>`` for the others): ``requested`` when recorded (:func:`record_requested`,
:func:`collect_requests`), ``accepted`` (with Algonomy's answer) the moment
Algonomy accepts it, ``failed`` (with the error) when it could not be sent.
:func:`send_pending` sends everything not yet accepted, concurrently at the
pace of the shared budget.

A crash between "Algonomy accepted" and "the ledger says so" is the only way an
id is sent twice, and at most ``concurrency`` ids are in that window. One
sender per credential runs at a time (:func:`sender_lock`: a lease in the
ledger's database, taken over when its holder dies), so two runs, on one host
or many, never send the same id at once. No Airflow here.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from vendorflow.accounts import DEFAULT as DEFAULT_ACCOUNT
from vendorflow.errors import ConfigError, VendorAPIError, VendorflowError
from vendorflow.progress import counted
from vendorflow.vendors.algonomy.ids import BadUserIds, clean_user_ids, file_user_ids, param_user_ids

if TYPE_CHECKING:
    from vendorflow.ledger import Ledger
    from vendorflow.vendors.algonomy.hook import AlgonomyHook
    from vendorflow.vendors.algonomy.inbox import Inbox

log = logging.getLogger(__name__)

LEDGER = "algonomy_optouts"
REQUESTED, ACCEPTED, FAILED = "requested", "accepted", "failed"
STATUSES = (REQUESTED, ACCEPTED, FAILED)


def open_ledger() -> Ledger:
    from vendorflow.ledger import Ledger

    return Ledger(LEDGER)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def ledger_key(account: str, user_id: str) -> str:
    """The ledger key of ``user_id`` at Algonomy ``account``: the id alone for the default account (the key
    it had before accounts, so an upgrade sends nothing again), ``<account>/<id>`` for the others (an id
    never holds a ``/``: :func:`~vendorflow.vendors.algonomy.ids.clean_user_ids` refuses it)."""
    return user_id if account == DEFAULT_ACCOUNT else f"{account}/{user_id}"


def split_key(key: str) -> tuple[str, str]:
    """``(account, user_id)`` of a ledger key (:func:`ledger_key`)."""
    account, slash, user_id = key.partition("/")
    return (account, user_id) if slash else (DEFAULT_ACCOUNT, key)


def record_requested(
    ledger: Ledger,
    user_ids: Sequence[str],
    *,
    source: str,
    run_id: str,
    dt: date,
    accounts: Sequence[str] = (DEFAULT_ACCOUNT,),
) -> int:
    """Write each id not yet in the ledger of each of ``accounts`` as ``requested``; returns how many were new.

    An id already there (requested, failed or accepted) is left as it is: an
    accepted id is never reopened, so it is never sent again.
    """
    now = _now()
    data = {"requested_at": now, "source": source, "run_id": run_id, "dt": dt.isoformat(), "attempts": 0}
    entries = ((ledger_key(account, uid), REQUESTED, data) for account in accounts for uid in user_ids)
    return ledger.put_many(entries, only_if_absent=True)


@contextlib.contextmanager
def sender_lock(ledger: Ledger, key: str, *, log: logging.Logger = log) -> Iterator[None]:
    """One sender per credential at a time (threads, processes, runs and, with a shared ledger, hosts):
    a lease in the ledger's database, taken over when its holder dies."""
    from vendorflow.ledger import LEASES, Ledger, lease

    leases = Ledger(LEASES, ledger.path) if ledger.path is not None else Ledger(LEASES, url=ledger.url)
    with lease(f"{LEDGER}.sender.{key}", log=log, ledger=leases):
        yield


# --- sending ---------------------------------------------------------------------------


@dataclass
class SendSummary:
    """What one send pass did (returned to XCom; user ids only for the failures)."""

    pending: int = 0
    accepted: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    not_sent: int = 0
    seconds: float = 0.0
    requests: int = 0
    retries: int = 0
    stopped: str | None = None
    touched: set[str] = field(default_factory=set)  # the dt partitions whose rows changed

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def line(self, allowed: float) -> str:
        text = (
            f"Algonomy opt-outs: {self.accepted:,} accepted, {len(self.failed):,} failed, {self.not_sent:,} not sent "
            f"of {self.pending:,} pending, in {self.seconds:.1f} s; {counted(self.requests, 'requests')} "
            f"({self.rate:.1f}/s of the {allowed:g}/s allowed), {self.retries:,} retried"
        )
        return text + (f"; stopped early: {self.stopped}" if self.stopped else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "accepted": self.accepted,
            "failed": dict(list(self.failed.items())[:100]),
            "failed_count": len(self.failed),
            "not_sent": self.not_sent,
            "seconds": round(self.seconds, 3),
            "requests": self.requests,
            "retries": self.retries,
            "stopped": self.stopped,
            "partitions": sorted(self.touched),
        }


def _fatal(exc: BaseException) -> bool:
    """Errors that will hit every other id too: stop sending instead of burning through the list."""
    if isinstance(exc, VendorAPIError):
        return exc.status in (None, 401, 403, 429) or exc.status >= 500
    return isinstance(exc, ConfigError)


def send_pending(
    hook: AlgonomyHook,
    ledger: Ledger | None = None,
    *,
    account: str = DEFAULT_ACCOUNT,
    logger: logging.Logger | None = None,
    progress_every: float = 10.0,
) -> SendSummary:
    """Send every id of ``account`` in the ledger that is not accepted; mark each accepted as soon as
    Algonomy accepts it."""
    from vendorflow.http.concurrency import bounded_map
    from vendorflow.progress import Progress

    logger = logger or log
    ledger = ledger or open_ledger()
    summary = SendSummary()
    started = time.monotonic()
    with sender_lock(ledger, hook.credential_key, log=logger):
        pending = [e for e in ledger.with_status(REQUESTED, FAILED) if split_key(e.key)[0] == account]
        summary.pending = len(pending)
        name = "Algonomy opt-outs" + ("" if account == DEFAULT_ACCOUNT else f" (account {account})")
        if not pending:
            logger.info("%s: nothing pending", name)
            return summary
        client = hook.client
        requests_before, retries_before = client.requests_sent, client.retries
        progress = Progress(name, log=logger, unit="opt-outs", total=len(pending), every=progress_every)
        stop = threading.Event()
        lock = threading.Lock()
        logger.info(
            "%s: %d pending (%d never sent, %d failed before), %d in flight at most, %g requests/s",
            name,
            len(pending),
            sum(e.status == REQUESTED for e in pending),
            sum(e.status == FAILED for e in pending),
            hook.concurrency,
            hook.requests_per_second,
        )

        def send(entry: Any) -> None:
            if stop.is_set():
                with lock:
                    summary.not_sent += 1
                return
            data = dict(entry.data)
            data["attempts"] = int(data.get("attempts") or 0) + 1
            user_id = split_key(entry.key)[1]
            try:
                answer = hook.opt_out(user_id)
            except (VendorflowError, ValueError) as exc:
                data["last_error"] = str(exc)[:1000]
                data["last_error_at"] = _now()
                ledger.put(entry.key, FAILED, data, only_if=entry.status)
                with lock:
                    summary.failed[user_id] = str(exc)[:300]
                    summary.touched.add(str(data.get("dt")))
                if _fatal(exc) and not stop.is_set():
                    stop.set()
                    summary.stopped = str(exc)[:500]
                    logger.error("%s: Algonomy refused %s; not sending the rest: %s", name, user_id, exc)
                progress.advance(1)
                return
            data.update(
                accepted_at=answer.accepted_at.isoformat(timespec="microseconds"),
                http_status=answer.status,
                answer=answer.body,
                last_error=None,
            )
            if not ledger.put(entry.key, ACCEPTED, data, only_if=entry.status):
                logger.warning(
                    "Ledger entry of %s changed while it was being sent; recorded acceptance anyway", entry.key
                )
                ledger.put(entry.key, ACCEPTED, data)
            with lock:
                summary.accepted += 1
                summary.touched.add(str(data.get("dt")))
            progress.advance(1, 1)

        for _ in bounded_map(send, pending, hook.concurrency):
            pass
        summary.seconds = time.monotonic() - started
        summary.requests = client.requests_sent - requests_before
        summary.retries = client.retries - retries_before
        logger.info("%s", progress.line())
    logger.info("%s", summary.line(hook.requests_per_second))
    return summary


def unsent_message(summary: SendSummary) -> str:
    shown = "\n  - ".join(f"{uid}: {err}" for uid, err in list(summary.failed.items())[:20])
    return (
        f"{len(summary.failed)} opt-out(s) failed and {summary.not_sent} were not sent; they stay pending "
        f"and the retry (or the next run) sends them again:\n  - {shown}"
    )


def rejected_files_message(rejected: Sequence[dict[str, Any]]) -> str:
    lines = "\n".join(f"  - {r['file']} -> {r['moved_to']}: {'; '.join(r['problems'][:5])}" for r in rejected)
    return (
        f"Every valid opt-out was sent, but {len(rejected)} inbox file(s) were refused and nothing in them was "
        f"sent; fix them and drop them in the inbox again:\n{lines}"
    )


# --- collecting requests -----------------------------------------------------------------


def collect_requests(
    ledger: Ledger,
    raw_param: Any,
    inboxes: Sequence[Inbox],
    *,
    run_id: str,
    dt: date,
    accounts: Sequence[str] = (DEFAULT_ACCOUNT,),
    log: logging.Logger = log,
) -> dict[str, Any]:
    """Record the ids of the ``user_ids`` param and of every file of ``inboxes`` as ``requested``, for each of
    ``accounts`` (an inbox of one account, ``inbox.account``, records for that account only).

    Bad ids in the param raise :class:`~vendorflow.vendors.algonomy.ids.BadUserIds` before anything
    is recorded. A bad inbox file is moved to ``rejected/`` with its problems beside it and the other
    files go on; a good file is moved to ``done/`` only once every id in it is in the ledger.
    """
    from_params = clean_user_ids(param_user_ids(raw_param), "param user_ids")
    result: dict[str, Any] = {"params": len(from_params), "new": 0, "files": [], "rejected": []}
    if from_params:
        result["new"] += record_requested(ledger, from_params, source="params", run_id=run_id, dt=dt, accounts=accounts)
        log.info("param user_ids: %d ids, %d not seen before", len(from_params), result["new"])
    for inbox, item in ((box, item) for box in inboxes for item in box.files()):
        try:
            ids = clean_user_ids(file_user_ids(item.name, inbox.read(item)), f"inbox file {item.name}")
        except BadUserIds as exc:
            target = inbox.reject(item, run_id, str(exc))
            log.error("%s\nMoved to %s (problems in %s.errors.txt)", exc, target, target)
            result["rejected"].append({"file": item.name, "moved_to": target, "problems": exc.problems[:20]})
            continue
        for_accounts = accounts if inbox.account is None else (inbox.account,)
        new = record_requested(ledger, ids, source=f"inbox:{item.name}", run_id=run_id, dt=dt, accounts=for_accounts)
        target = inbox.done(item, run_id)
        result["new"] += new
        result["files"].append({"file": item.name, "ids": len(ids), "new": new, "moved_to": target})
        log.info("inbox file %s: %d ids, %d not seen before; moved to %s", item.name, len(ids), new, target)
    log.info(
        "Recorded %d new opt-out requests (%d from params, %d inbox files, %d rejected files)",
        result["new"],
        len(from_params),
        len(result["files"]),
        len(result["rejected"]),
    )
    return result


def pending_user_ids(ledger: Ledger | None = None, account: str = DEFAULT_ACCOUNT) -> list[str]:
    """Every id of ``account`` in the ledger not yet accepted (what its next send pass will send)."""
    entries = (ledger or open_ledger()).with_status(REQUESTED, FAILED)
    return [user for account_of, user in (split_key(e.key) for e in entries) if account_of == account]
