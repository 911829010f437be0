"""Opting users out of Algonomy so that no request is ever lost and no accepted one is sent again.

Two steps, each idempotent:

1. :class:`RecordOptOutRequestsOperator` collects user ids (a manual trigger's
   ``user_ids`` param and the files in ``<data_root>/algonomy/inbox``),
   validates them (every bad id is refused, with its line, before anything is
   sent), and writes each new one to the ledger as ``requested``. Only then is
   an inbox file moved aside (``inbox/done/<run>/``; a file with a bad id goes
   to ``inbox/rejected/<run>/`` with a ``.errors.txt`` beside it).
2. :class:`AlgonomyOptOutOperator` sends every id of the ledger that is not
   ``accepted`` (this run's, and any a crashed or failed run left behind),
   concurrently at the pace of the shared budget, and marks each ``accepted``
   (time and answer) the moment Algonomy accepts it. It then republishes the
   ``algonomy/optouts`` partitions it changed.

A crash between "Algonomy accepted" and "the ledger says so" is the only way an
id is sent twice, and at most ``concurrency`` ids are in that window. One
sender per credential runs at a time (a lease in the ledger's database, taken
over when its holder dies), so two runs, on one host or many, never send the
same id at once.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from vendorflow.assets import asset
from vendorflow.vendors.algonomy.datasets import ACCEPTED, FAILED, LEDGER, REQUESTED
from vendorflow.errors import ConfigError, VendorAPIError, VendorflowError
from vendorflow.vendors.algonomy.hook import invisible_character, user_id_problem
from vendorflow.progress import counted

if TYPE_CHECKING:
    from vendorflow.vendors.algonomy.hook import AlgonomyHook
    from vendorflow.ledger import Ledger

log = logging.getLogger(__name__)

DATASET = "algonomy/optouts"
INBOX = "algonomy/inbox"
ID_HEADERS = frozenset({"user_id", "userid", "user id", "id", "user"})
SKIPPED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".errors.txt")


# --- ids: trimmed, validated, de-duplicated ----------------------------------------


class BadUserIds(ConfigError):
    """Some user ids cannot be sent; the message lists each, where it came from and why."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source, self.problems = source, list(problems)
        shown = "\n  - ".join(self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(
            f"{source}: {len(self.problems)} user id(s) refused, nothing was sent:\n  - {shown}{more}"
        )


# Only ASCII spaces, tabs and line ends are trimmed: ``str.strip()`` would also eat
# \x1c-\x1f, \x85 and U+2028, which must refuse the id instead.
TRIMMED = " \t\r\n"


def split_lines(text: str) -> list[str]:
    """Lines split on ``\n`` (and ``\r\n``) only, never on the other characters ``str.splitlines`` takes
    for line breaks (``\x0b``, ``\x0c``, ``\x1c``-``\x1e``, ``\x85``, U+2028, U+2029): those stay in the
    line, where the id check refuses them."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def clean_user_ids(values: Iterable[tuple[str, Any]], source: str) -> list[str]:
    """``(where, raw value)`` pairs to the ids to send: trimmed, blank ones skipped, duplicates dropped
    (first one kept). Raises :class:`BadUserIds` naming every bad one."""
    seen: dict[str, None] = {}
    problems = []
    for where, raw in values:
        value = raw.strip(TRIMMED) if isinstance(raw, str) else raw
        if value == "" or value is None:
            continue
        problem = user_id_problem(value)
        if problem:
            shown = value if not isinstance(value, str) else (value if len(value) <= 60 else value[:57] + "...")
            problems.append(f"{where}: {shown!r} {problem}")
            continue
        seen.setdefault(value, None)
    if problems:
        raise BadUserIds(source, problems)
    return list(seen)


def param_user_ids(value: Any) -> list[tuple[str, Any]]:
    """The ``user_ids`` param as ``(where, value)`` pairs: a list (the UI's one-id-a-line box),
    or text with one id a line (a conf written by hand)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [(f"line {n}", line) for n, line in enumerate(split_lines(value), 1)]
    if isinstance(value, (list, tuple)):
        return [(f"item {n}", item) for n, item in enumerate(value, 1)]
    raise BadUserIds("param user_ids", [f"must be a list of user ids, not {type(value).__name__}"])


def file_user_ids(name: str, content: bytes) -> list[tuple[str, Any]]:
    """A CSV or text file, one id a line, as ``(where, value)`` pairs.

    A CSV may have a header naming the column (``user_id``, ``userId``, ``id``);
    without one, each row must have exactly one column. Text files are one id a
    line (a header line named like above is skipped too).
    """
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadUserIds(name, [f"is not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    lines = split_lines(text)
    if not name.lower().endswith(".csv"):
        pairs = [(f"line {n}", line) for n, line in enumerate(lines, 1)]
        if pairs and pairs[0][1].strip(TRIMMED).lower() in ID_HEADERS:
            pairs = pairs[1:]
        return pairs
    # The csv module ends a row at a bare "\r" too: a line holding a control or invisible
    # character is refused before it can be parsed into two rows.
    hidden = []
    for n, line in enumerate(lines, 1):
        found = invisible_character(line.replace("\t", " "))
        if found:
            position, what = found
            hidden.append(f"line {n}: contains {what} at position {position}")
    if hidden:
        raise BadUserIds(name, hidden)
    rows = list(csv.reader(lines))
    if not rows:
        return []
    column = 0
    start = 0
    header = [cell.strip().lower() for cell in rows[0]]
    named = [i for i, cell in enumerate(header) if cell in ID_HEADERS]
    if named:
        column, start = named[0], 1
    pairs: list[tuple[str, Any]] = []
    problems = []
    for n, row in enumerate(rows[start:], start + 1):
        cells = [c for c in row]
        if not any(c.strip() for c in cells):
            continue
        if not named and len(cells) != 1:
            problems.append(f"line {n}: has {len(cells)} columns; one id a line, or a header naming the user_id column")
            continue
        pairs.append((f"line {n}", cells[column] if column < len(cells) else ""))
    if problems:
        raise BadUserIds(name, problems)
    return pairs


# --- the ledger ----------------------------------------------------------------------


def open_ledger() -> Ledger:
    from vendorflow.ledger import Ledger

    return Ledger(LEDGER)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def record_requested(ledger: Ledger, user_ids: Sequence[str], *, source: str, run_id: str, dt: date) -> int:
    """Write each id not yet in the ledger as ``requested``; returns how many were new.

    An id already there (requested, failed or accepted) is left as it is: an
    accepted id is never reopened, so it is never sent again.
    """
    now = _now()
    data = {"requested_at": now, "source": source, "run_id": run_id, "dt": dt.isoformat(), "attempts": 0}
    return ledger.put_many(((uid, REQUESTED, data) for uid in user_ids), only_if_absent=True)


@contextlib.contextmanager
def sender_lock(ledger: Ledger, key: str, *, log: logging.Logger = log) -> Iterator[None]:
    """One sender per credential at a time (threads, processes, runs and, with a shared ledger, hosts):
    a lease in the ledger's database, taken over when its holder dies."""
    from vendorflow.ledger import LEASES, Ledger, lease

    leases = Ledger(LEASES, ledger.path) if ledger.path is not None else Ledger(LEASES, url=ledger.url)
    with lease(f"{LEDGER}.sender.{key}", log=log, ledger=leases):
        yield


# --- sending -----------------------------------------------------------------------


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
    logger: logging.Logger | None = None,
    progress_every: float = 10.0,
) -> SendSummary:
    """Send every id of the ledger that is not accepted; mark each accepted as soon as Algonomy accepts it."""
    from vendorflow.http.paginate import bounded_map
    from vendorflow.progress import Progress

    logger = logger or log
    ledger = ledger or open_ledger()
    summary = SendSummary()
    started = time.monotonic()
    with sender_lock(ledger, hook.credential_key, log=logger):
        pending = ledger.with_status(REQUESTED, FAILED)
        summary.pending = len(pending)
        if not pending:
            logger.info("Algonomy opt-outs: nothing pending")
            return summary
        client = hook.client
        requests_before, retries_before = client.requests_sent, client.retries
        progress = Progress("Algonomy opt-outs", log=logger, unit="opt-outs", total=len(pending), every=progress_every)
        stop = threading.Event()
        lock = threading.Lock()
        logger.info(
            "Algonomy opt-outs: %d pending (%d never sent, %d failed before), %d in flight at most, %g requests/s",
            len(pending), sum(e.status == REQUESTED for e in pending), sum(e.status == FAILED for e in pending),
            hook.concurrency, hook.requests_per_second,
        )

        def send(entry: Any) -> None:
            if stop.is_set():
                with lock:
                    summary.not_sent += 1
                return
            data = dict(entry.data)
            data["attempts"] = int(data.get("attempts") or 0) + 1
            try:
                answer = hook.opt_out(entry.key)
            except (VendorflowError, ValueError) as exc:
                data["last_error"] = str(exc)[:1000]
                data["last_error_at"] = _now()
                ledger.put(entry.key, FAILED, data, only_if=entry.status)
                with lock:
                    summary.failed[entry.key] = str(exc)[:300]
                    summary.touched.add(str(data.get("dt")))
                if _fatal(exc) and not stop.is_set():
                    stop.set()
                    summary.stopped = str(exc)[:500]
                    logger.error("Algonomy refused %s; not sending the rest: %s", entry.key, exc)
                progress.advance(1)
                return
            data.update(
                accepted_at=answer.accepted_at.isoformat(timespec="microseconds"),
                http_status=answer.status,
                answer=answer.body,
                last_error=None,
            )
            if not ledger.put(entry.key, ACCEPTED, data, only_if=entry.status):
                logger.warning("Ledger entry of %s changed while it was being sent; recorded acceptance anyway", entry.key)
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


# --- the inbox ---------------------------------------------------------------------


def _safe(run_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)[:120]


@dataclass
class InboxFile:
    name: str
    path: str


class Inbox:
    """``<data_root>/algonomy/inbox``: files of user ids, each processed once, then moved aside."""

    def __init__(self, root: str | None = None) -> None:
        from vendorflow import settings
        from vendorflow.pipeline.storage import Lake

        self.lake = Lake(root or settings.data_root())
        self.fs = self.lake.fs
        self.folder = self.lake.join(INBOX)

    def files(self) -> list[InboxFile]:
        if not self.fs.exists(self.folder):
            return []
        found = []
        for info in self.fs.ls(self.folder, detail=True):
            name = info["name"].rstrip("/").rsplit("/", 1)[-1]
            if info.get("type") != "file" or name.startswith((".", "_")) or name.lower().endswith(SKIPPED_SUFFIXES):
                continue  # hidden, still being written (write then rename), or our own notes
            found.append(InboxFile(name, info["name"]))
        return sorted(found, key=lambda f: f.name)

    def read(self, item: InboxFile) -> bytes:
        return self.fs.cat_file(item.path)

    def _move(self, item: InboxFile, where: str, run_id: str) -> str:
        folder = f"{self.folder}/{where}/{_safe(run_id)}"
        self.fs.makedirs(folder, exist_ok=True)
        target = f"{folder}/{item.name}"
        self.fs.mv(item.path, target)
        return target

    def done(self, item: InboxFile, run_id: str) -> str:
        return self._move(item, "done", run_id)

    def reject(self, item: InboxFile, run_id: str, error: str) -> str:
        target = self._move(item, "rejected", run_id)
        self.fs.pipe_file(f"{target}.errors.txt", (error + "\n").encode())
        return target


# --- the operators -----------------------------------------------------------------


def _run_day(context: Any) -> date:
    """The run's logical date; a manual run without one counts on the day it was triggered."""
    moment = context.get("logical_date")
    if moment is None:
        dag_run = context.get("dag_run")
        moment = getattr(dag_run, "run_after", None) or datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).date() if moment.tzinfo else moment.date()


class RecordOptOutRequestsOperator(BaseOperator):
    """Collect, validate and record the user ids to opt out: the ``user_ids`` param and the inbox files.

    Bad ids in the param fail the task before anything is recorded or sent.
    A bad inbox file is moved to ``inbox/rejected/<run>/`` with its problems
    beside it; the other files go on, and the run reports the rejection.

    :param user_ids: ids to opt out (templated); ``None`` reads the run's ``user_ids`` param.
    :param read_inbox: also take the files waiting in ``<data_root>/algonomy/inbox``.
    """

    template_fields = ("user_ids",)
    ui_color = "#fdf0e2"

    def __init__(self, *, user_ids: list[str] | str | None = None, read_inbox: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("task_id", "record_requests")
        super().__init__(**kwargs)
        self.user_ids = user_ids
        self.read_inbox = read_inbox

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        run_id = str(context["run_id"])
        day = _run_day(context)
        raw = self.user_ids if self.user_ids is not None else (context.get("params") or {}).get("user_ids")
        try:
            from_params = clean_user_ids(param_user_ids(raw), "param user_ids")
        except BadUserIds as exc:
            raise AirflowFailException(str(exc)) from None  # fixing the trigger is the only cure: no retries
        ledger = open_ledger()
        result: dict[str, Any] = {"params": len(from_params), "new": 0, "files": [], "rejected": []}
        if from_params:
            result["new"] += record_requested(ledger, from_params, source="params", run_id=run_id, dt=day)
            self.log.info("param user_ids: %d ids, %d not seen before", len(from_params), result["new"])
        if self.read_inbox:
            inbox = Inbox()
            for item in inbox.files():
                try:
                    ids = clean_user_ids(file_user_ids(item.name, inbox.read(item)), f"inbox file {item.name}")
                except BadUserIds as exc:
                    target = inbox.reject(item, run_id, str(exc))
                    self.log.error("%s\nMoved to %s (problems in %s.errors.txt)", exc, target, target)
                    result["rejected"].append({"file": item.name, "moved_to": target, "problems": exc.problems[:20]})
                    continue
                new = record_requested(ledger, ids, source=f"inbox:{item.name}", run_id=run_id, dt=day)
                target = inbox.done(item, run_id)  # only once every id is in the ledger
                result["new"] += new
                result["files"].append({"file": item.name, "ids": len(ids), "new": new, "moved_to": target})
                self.log.info("inbox file %s: %d ids, %d not seen before; moved to %s", item.name, len(ids), new, target)
        self.log.info(
            "Recorded %d new opt-out requests (%d from params, %d inbox files, %d rejected files)",
            result["new"], len(from_params), len(result["files"]), len(result["rejected"]),
        )
        return result


class AlgonomyOptOutOperator(BaseOperator):
    """Send every opt-out not yet accepted, record each acceptance, publish ``algonomy/optouts``.

    Fails (and a retry resumes where it stopped) if any id was refused or
    could not be sent; fails without retrying if ``requests_task_id`` reported
    rejected inbox files, after sending everything else.

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
        self.algonomy_conn_id = algonomy_conn_id
        self.requests_task_id = requests_task_id
        self.progress_every = progress_every

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowException, AirflowFailException

        from vendorflow.vendors.algonomy.hook import AlgonomyHook

        hook = AlgonomyHook(conn_id=self.algonomy_conn_id)
        ledger = open_ledger()
        summary: SendSummary | None = None
        try:
            summary = send_pending(hook, ledger, logger=self.log, progress_every=self.progress_every)
        finally:
            touched = summary.touched if summary else set()
            published = self._publish(hook, touched, context)
        result = {**summary.as_dict(), "published": published}
        context["outlet_events"][asset(DATASET)].extra = {"partitions": sorted(touched), "published": published}
        if summary.failed or summary.not_sent:
            shown = "\n  - ".join(f"{uid}: {err}" for uid, err in list(summary.failed.items())[:20])
            raise AirflowException(
                f"{len(summary.failed)} opt-out(s) failed and {summary.not_sent} were not sent; they stay pending "
                f"and the retry (or the next run) sends them again:\n  - {shown}"
            )
        rejected = self._rejected_files(context)
        if rejected:
            lines = "\n".join(f"  - {r['file']} -> {r['moved_to']}: {'; '.join(r['problems'][:5])}" for r in rejected)
            raise AirflowFailException(
                f"Every valid opt-out was sent, but {len(rejected)} inbox file(s) were refused and nothing in them was "
                f"sent; fix them and drop them in the inbox again:\n{lines}"
            )
        return result

    def _rejected_files(self, context: Any) -> list[dict[str, Any]]:
        if not self.requests_task_id:
            return []
        recorded = context["ti"].xcom_pull(task_ids=self.requests_task_id) or {}
        return list(recorded.get("rejected") or [])

    def _publish(self, hook: AlgonomyHook, touched: set[str], context: Any) -> list[dict[str, Any]]:
        """Republish the partitions whose rows changed; a failure here never hides the sending's outcome."""
        days = sorted(d for d in touched if d and d != "None")
        if not days:
            return []  # nothing changed: not even worth importing the pipeline (Great Expectations is slow to load)
        from vendorflow import datasets
        from vendorflow.pipeline.run import run_dataset

        published = []
        spec = datasets.get(DATASET)
        for day in days:
            try:
                result = run_dataset(
                    spec,
                    hook=hook,
                    dt=date.fromisoformat(day),
                    run_id=str(context["run_id"]),
                    try_number=getattr(context.get("ti"), "try_number", None),
                    logger=self.log,
                )
                published.append(result.as_dict())
            except Exception:
                self.log.exception("Publishing %s dt=%s failed; the ledger is intact and the next run republishes it", DATASET, day)
        return published


def pending_user_ids(ledger: Ledger | None = None) -> list[str]:
    """Every id of the ledger not yet accepted (what the next send pass will send)."""
    return [e.key for e in (ledger or open_ledger()).with_status(REQUESTED, FAILED)]
