"""Uploading validated partitions to Allyy datasources, once each: the targets, the ledger and the uploader.

What goes where is configuration (:func:`load_targets`, ``include/allyy_uploads.json``):
a dataset, the Allyy ``dataSetId`` and ``datasourceId`` it goes to, and the
file format. Each partition is streamed from Parquet to a CSV or JSON file
(:func:`vendorflow.pipeline.export.export_partition`), uploaded, and recorded
in the ``allyy_uploads`` ledger under :func:`partition_key`: a rerun skips what
Allyy already finished unless ``force`` is set, waits for what is still
processing, and checks what a crashed attempt may have sent before sending it
again.

No Airflow import: :class:`~vendorflow.vendors.allyy.operators.AllyyUploadOperator`
resolves the run and calls :class:`Uploader`; the targets are read at DAG parse
time, so this module imports nothing heavy at its top.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from vendorflow.accounts import DEFAULT as DEFAULT_ACCOUNT
from vendorflow.accounts import check_name
from vendorflow.errors import ConfigError, ValidationFailed, VendorAPIError, VendorflowError

if TYPE_CHECKING:
    from vendorflow.ledger import Ledger
    from vendorflow.pipeline.storage import Lake
    from vendorflow.vendors.allyy.hook import AllyyHook

CONFIG_ENV = "VENDORFLOW_ALLYY_UPLOADS"
FORMATS = ("csv", "json")

# The ledger, published as ``allyy/uploads``: one entry per partition (:func:`partition_key`).
LEDGER = "allyy_uploads"
SENDING = "sending"  # claimed and being sent: a crash from here on is checked at Allyy before sending again
PROCESSING = "processing"  # Allyy accepted the file and is inserting it
FINISHED = "finished"
FAILED = "failed"  # refused at once, or failed while processing (Allyy's messages in ``message``)

_DATASET = re.compile(r"^[a-z][a-z0-9_]*/[a-z][a-z0-9_]*$")
_PARTITION = re.compile(r"^(?P<dataset>[a-z][a-z0-9_]*/[a-z][a-z0-9_]*)/dt=(?P<dt>\d{4}-\d{2}-\d{2})$")

Wanted = tuple[str, str]  # (dataset, dt)


def open_ledger() -> Ledger:
    from vendorflow.ledger import Ledger

    return Ledger(LEDGER)


def partition_key(
    dataset: str, dt: date | str, account: str = DEFAULT_ACCOUNT, allyy_account: str = DEFAULT_ACCOUNT
) -> str:
    """The ledger key of a partition: its path under the data root (``<dataset>/dt=<dt>``), then
    ``/<account>`` for a source account other than ``default`` and ``@<allyy account>`` for an Allyy account
    other than ``default`` (so the keys written before accounts stay the default accounts')."""
    key = f"{dataset}/dt={dt}"
    if account != DEFAULT_ACCOUNT:
        key += f"/{account}"
    if allyy_account != DEFAULT_ACCOUNT:
        key += f"@{allyy_account}"
    return key


# --- configuration: read at DAG parse time, so plain JSON and nothing else ----------------------


@dataclass(frozen=True)
class UploadTarget:
    """Where one dataset's partitions go."""

    dataset: str
    data_set_id: str
    datasource_id: str
    format: Literal["csv", "json"]
    columns: tuple[str, ...] | None = None
    account: str = DEFAULT_ACCOUNT  # the source dataset's account ("account" in the file)
    allyy_account: str = DEFAULT_ACCOUNT  # the Allyy account it goes to ("allyyAccount")

    def key(self, dt: date | str) -> str:
        """The ledger key of this target's partition of ``dt``."""
        return partition_key(self.dataset, dt, self.account, self.allyy_account)


def config_path() -> Path:
    from vendorflow.settings import PROJECT_ROOT

    explicit = os.environ.get(CONFIG_ENV)
    return Path(explicit) if explicit else PROJECT_ROOT / "include" / "allyy_uploads.json"


def load_targets(path: Path | None = None) -> tuple[UploadTarget, ...]:
    """The configured uploads; a malformed file is a :class:`ConfigError` naming the file and the entry."""
    path = path or config_path()
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: the Allyy upload configuration is missing (set {CONFIG_ENV} or create it)"
        ) from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    entries = document.get("uploads") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected an object with an 'uploads' list")
    targets: list[UploadTarget] = []
    for number, entry in enumerate(entries):
        targets.append(_target(entry, f"{path}: uploads[{number}]", targets))
    return tuple(targets)


def _target(entry: Any, where: str, before: list[UploadTarget]) -> UploadTarget:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be an object")
    missing = [k for k in ("dataset", "dataSetId", "datasourceId", "format") if not entry.get(k)]
    if missing:
        raise ConfigError(f"{where} lacks {', '.join(missing)}")
    if not _DATASET.match(str(entry["dataset"])):
        raise ConfigError(f"{where}: dataset must be '<vendor>/<dataset>', not {entry['dataset']!r}")
    if entry["format"] not in FORMATS:
        raise ConfigError(f"{where}: format must be csv or json, not {entry['format']!r}")
    columns = entry.get("columns")
    if columns is not None and (
        not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns)
    ):
        raise ConfigError(f"{where}: columns must be a non-empty list of column names")
    try:
        account = check_name(entry.get("account", DEFAULT_ACCOUNT), f"{where}: account")
        allyy_account = check_name(entry.get("allyyAccount", DEFAULT_ACCOUNT), f"{where}: allyyAccount")
    except ConfigError as exc:
        raise ConfigError(str(exc)) from None
    if any((t.dataset, t.account, t.allyy_account) == (entry["dataset"], account, allyy_account) for t in before):
        accounts = "" if (account, allyy_account) == (DEFAULT_ACCOUNT,) * 2 else f" (account {account}, Allyy "
        raise ConfigError(
            f"{where}: {entry['dataset']} is configured twice{accounts}"
            + (f"account {allyy_account})" if accounts else "")
        )
    return UploadTarget(
        str(entry["dataset"]),
        str(entry["dataSetId"]),
        str(entry["datasourceId"]),
        entry["format"],
        tuple(columns) if columns else None,
        account,
        allyy_account,
    )


# --- which partitions a run is about ----------------------------------------------------------


def parse_partition(text: str, default_dt: str | None = None) -> Wanted:
    """``"<vendor>/<dataset>/dt=YYYY-MM-DD"``, or ``"<vendor>/<dataset>"`` for the run's logical date."""
    text = text.strip()
    match = _PARTITION.match(text)
    if match:
        date.fromisoformat(match["dt"])
        return match["dataset"], match["dt"]
    if _DATASET.match(text) and default_dt:
        return text, default_dt
    raise ConfigError(
        f"partition must look like 'recreativ/offer_statistics/dt=2024-03-01' (or just the dataset, for the "
        f"run's logical date), not {text!r}"
    )


def triggered_partitions(events: Any, targets: Iterable[UploadTarget]) -> list[Wanted]:
    """``(dataset, dt)`` of every asset event of a configured dataset of the target's source account
    (DatasetOperator puts ``dt`` and ``account`` in the extra)."""
    from vendorflow.assets import asset

    found: list[Wanted] = []
    if not events:
        return found
    for target in targets:
        try:
            received = events[asset(target.dataset)]
        except (KeyError, TypeError):
            continue
        for event in received:
            extra = getattr(event, "extra", None) or {}
            if extra.get("account", DEFAULT_ACCOUNT) != target.account:
                continue
            dt = extra.get("dt")
            if not dt:
                raise VendorflowError(f"an asset event of {target.dataset} carries no dt in its extra ({extra!r})")
            # A run with a lookback names every day it published (its own and those whose content changed).
            published = [p.get("dt") for p in extra.get("partitions") or [] if isinstance(p, Mapping) and p.get("dt")]
            found.extend((target.dataset, str(d)) for d in (published if "partitions" in extra else [dt]))
    return found


def requested(
    events: Any, manual: Any, day: str | None, targets: Mapping[str, UploadTarget], config: Path | str
) -> list[Wanted]:
    """The partitions a run uploads, once each and in order: its triggering asset events', then the
    ``partitions`` param's (a dataset alone means its partition of ``day``)."""
    wanted = triggered_partitions(events, targets.values())
    for text in [manual] if isinstance(manual, str) else manual or []:
        wanted.append(parse_partition(str(text), day))
    unknown = sorted({d for d, _ in wanted if d not in targets})
    if unknown:
        raise ConfigError(f"{', '.join(unknown)}: not configured for upload in {config}")
    return list(dict.fromkeys(wanted))


def run_partitions(
    config: str | Path | None,
    events: Any,
    manual: Any,
    day: date | None,
    *,
    by_hand: bool = False,
    allyy_account: str = DEFAULT_ACCOUNT,
) -> list[tuple[dict[str, UploadTarget], list[Wanted]]]:
    """The configured targets of ``allyy_account`` and the partitions a run uploads (:func:`requested`),
    from the run's triggering asset events, its ``partitions`` param and its day, one group per source
    account (a dataset's targets keyed by dataset). A run triggered by hand with neither events nor
    partitions uploads every configured dataset's partition of its day."""
    path = Path(config) if config else config_path()
    every = load_targets(path)
    unknown = sorted({_dataset_of(m) for m in _listed(manual)} - {t.dataset for t in every})
    if unknown:
        raise ConfigError(f"{', '.join(unknown)}: not configured for upload in {path}")
    configured = [t for t in every if t.allyy_account == allyy_account]
    groups = []
    text = day.isoformat() if day else None
    for account in dict.fromkeys(t.account for t in configured):
        targets = {t.dataset: t for t in configured if t.account == account}
        wanted = requested(events, [m for m in _listed(manual) if _dataset_of(m) in targets], text, targets, path)
        if not wanted and by_hand and text and not _listed(manual):
            wanted = [(dataset, text) for dataset in targets]
        groups.append((targets, wanted))
    return groups


def _listed(manual: Any) -> list[str]:
    return [manual] if isinstance(manual, str) else [str(m) for m in manual or []]


def _dataset_of(text: str) -> str:
    return text.strip().split("/dt=")[0]


def refused(rejected: list[str], what: str = "Allyy refused the upload") -> VendorflowError:
    return VendorflowError(f"{what}:\n  - " + "\n  - ".join(rejected))


def validated_manifests(
    lake: Lake, wanted: Iterable[Wanted], targets: Mapping[str, UploadTarget] | None = None
) -> dict[str, dict[str, Any]]:
    """The manifest of each partition (of its target's source account); refuses them all if any is not a
    validated, published partition."""
    manifests: dict[str, dict[str, Any]] = {}
    refused = []
    for dataset, dt in wanted:
        target = (targets or {}).get(dataset)
        key = target.key(dt) if target else partition_key(dataset, dt)
        account = target.account if target else DEFAULT_ACCOUNT
        manifest = lake.read_manifest(dataset, dt, account)
        data_file = lake.data_file(dataset, dt, account)
        if manifest is None or manifest.get("dataset") != dataset or not lake.fs.exists(data_file):
            quarantined = lake.fs.exists(lake.join("_quarantine", dataset, f"dt={dt}"))
            why = "it failed validation and is quarantined" if quarantined else "no validated partition is published"
            refused.append(f"{key}: {why}")
        else:
            manifests[key] = manifest
    if refused:
        raise ValidationFailed(
            "Only partitions that passed validation are uploaded to Allyy; nothing was sent. Refused:\n  - "
            + "\n  - ".join(refused)
        )
    return manifests


# --- the uploader ---------------------------------------------------------------------------------


def wait_spec(key: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """What the trigger needs to follow one upload (plain JSON: it is serialized with the trigger)."""
    return {
        "key": key,
        "data_set_id": data["data_set_id"],
        "datasource_id": data["datasource_id"],
        "upload_id": data["upload_id"],
        "requested_at": data["requested_at"],
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class Uploader:
    """Sends partitions to Allyy once each and records every step in the ledger.

    :meth:`send_all` returns what to wait for (Allyy processes uploads
    asynchronously) and what Allyy refused at once; :meth:`record` takes the
    outcome the trigger reports; :meth:`summary` is the ledger's state of a run's
    partitions.
    """

    def __init__(
        self, hook: AllyyHook, ledger: Ledger, lake: Lake, log: logging.Logger, *, batch_rows: int = 64 * 1024
    ) -> None:
        self.hook, self.ledger, self.lake, self.log, self.batch_rows = hook, ledger, lake, log, batch_rows

    def send_groups(
        self, groups: Iterable[tuple[Mapping[str, UploadTarget], list[Wanted]]], *, force: bool = False
    ) -> tuple[list[dict[str, Any]], list[str], list[str]]:
        """:meth:`send_all` for each group of :func:`run_partitions`, once every group's partitions are known
        to be validated (nothing is sent otherwise); the waits, the refusals and every partition's key."""
        groups = list(groups)
        manifests = [validated_manifests(self.lake, wanted, targets) for targets, wanted in groups]
        waits: list[dict[str, Any]] = []
        rejected: list[str] = []
        for (targets, wanted), found in zip(groups, manifests, strict=True):
            sent, refused = self.send_all(wanted, targets, found, force=force)
            waits, rejected = waits + sent, rejected + refused
        return waits, rejected, [targets[d].key(dt) for targets, wanted in groups for d, dt in wanted]

    def send_all(
        self,
        wanted: Iterable[Wanted],
        targets: Mapping[str, UploadTarget],
        manifests: Mapping[str, Mapping[str, Any]],
        *,
        force: bool = False,
    ) -> tuple[list[dict[str, Any]], list[str]]:
        waits: list[dict[str, Any]] = []
        rejected: list[str] = []
        for dataset, dt in wanted:
            target = targets[dataset]
            key = target.key(dt)
            entry = self.ledger.get(key)
            if entry is not None and not force:
                resumed = self._resume(key, target, entry, manifests[key])
                if resumed is not False:
                    if resumed is not None:
                        waits.append(resumed)
                    continue
            try:
                waits.append(self.send(target, dt, manifests[key], entry.status if entry else None))
            except VendorAPIError as exc:
                rejected.append(f"{key}: {exc}")
        return waits, rejected

    def _resume(
        self, key: str, target: UploadTarget, entry: Any, manifest: Mapping[str, Any]
    ) -> dict[str, Any] | None | Literal[False]:
        """What an earlier attempt left: ``None`` (done), a wait, or ``False`` (send it)."""
        data = entry.data
        sent, now = data.get("content_hash"), manifest.get("content_hash")
        if entry.status == FINISHED and sent and now and sent != now:
            self.log.info(
                "%s: uploaded as %s, but its content changed since (republished %s): uploading it again",
                key,
                data.get("upload_id"),
                manifest.get("published_at"),
            )
            return False
        if entry.status == FINISHED:
            self.log.info(
                "%s: already uploaded as %s (%s rows, finished %s); not sent again (force=true would)",
                key,
                data.get("upload_id"),
                data.get("rows"),
                data.get("finished_at"),
            )
            return None
        if entry.status == PROCESSING:
            self.log.info("%s: upload %s is still processing at Allyy; waiting for it", key, data.get("upload_id"))
            return wait_spec(key, data)
        if entry.status == SENDING:
            arrived = self.hook.find_upload(
                target.data_set_id,
                target.datasource_id,
                size_bytes=data.get("bytes"),
                created_after=datetime.fromisoformat(data["requested_at"]) - self.hook.upload_reconcile_window,
            )
            if arrived is not None:
                self.log.info("%s: an earlier attempt's upload %s did arrive; waiting for it", key, arrived.get("id"))
                found = {**data, "upload_id": arrived.get("id"), "allyy_status": arrived.get("status")}
                self.ledger.put(key, PROCESSING, found)
                return wait_spec(key, found)
        return False

    def send(
        self, target: UploadTarget, dt: str, manifest: Mapping[str, Any], seen_status: str | None
    ) -> dict[str, Any]:
        """Export one partition, claim it, send it; the wait for Allyy's processing."""
        from vendorflow.pipeline.export import export_partition
        from vendorflow.progress import Progress
        from vendorflow.vendors.allyy.hook import UPLOAD_WIRE

        key = target.key(dt)
        progress = Progress(f"allyy upload {key}", log=self.log, unit="files")
        source = self.lake.data_file(target.dataset, dt, target.account)
        with tempfile.TemporaryDirectory(prefix="vendorflow-allyy-") as folder:
            out = Path(folder) / f"{target.dataset.replace('/', '__')}__{dt}{UPLOAD_WIRE[target.format].suffix}"
            with self.lake.fs.open(source, "rb") as handle:
                rows, size = export_partition(
                    handle, out, target.format, columns=target.columns, batch_rows=self.batch_rows
                )
            if manifest.get("rows") is not None and rows != manifest["rows"]:
                raise VendorflowError(
                    f"{key}: the partition holds {rows} rows but its manifest says {manifest['rows']}; "
                    "it changed while being read, nothing was sent"
                )
            data: dict[str, Any] = {
                "dataset": target.dataset, "partition": dt, "format": target.format,
                "account": target.account, "allyy_account": target.allyy_account,
                "data_set_id": target.data_set_id, "datasource_id": target.datasource_id,
                "upload_id": None, "rows": rows, "bytes": size, "allyy_status": None, "processed_lines": None,
                "requested_at": _now(), "finished_at": None, "message": None,
                "published_at": manifest.get("published_at"), "content_hash": manifest.get("content_hash"),
            }  # fmt: skip
            # Claimed before the request (a crash from here on is checked at Allyy, not re-sent blindly), and only
            # from the state this task saw: another run that got there first keeps the partition.
            if not self.ledger.put(key, SENDING, data, only_if=seen_status):
                raise VendorflowError(
                    f"{key}: another run started uploading it meanwhile; nothing was sent by this one"
                )
            self.log.info(
                "%s: uploading %s rows (%s bytes of %s) to Allyy datasource %s",
                key,
                f"{rows:,}",
                f"{size:,}",
                target.format.upper(),
                target.datasource_id,
            )
            try:
                upload = self.hook.upload_file(
                    target.data_set_id, target.datasource_id, target.format, out, filename=out.name
                )
            except VendorAPIError as exc:
                self.ledger.put(key, FAILED, {**data, "message": exc.vendor_message, "finished_at": _now()})
                raise
        progress.advance(1, rows)
        self.log.info("%s", progress.line())
        data.update(upload_id=upload.get("id"), allyy_status=upload.get("status"))
        self.ledger.put(key, PROCESSING, data)
        self.log.info("%s: Allyy accepted it as upload %s", key, upload.get("id"))
        return wait_spec(key, data)

    def record(self, event: Mapping[str, Any]) -> list[str]:
        """Record the outcome the trigger reported; the problems, one line each (none: all finished)."""
        from vendorflow.vendors.allyy.hook import upload_messages, upload_state

        problems: list[str] = []
        uploads = event.get("uploads") or {}
        for key, upload in uploads.items():
            entry = self.ledger.get(key)
            data = dict(entry.data) if entry else {}
            state = upload_state(upload)
            messages = upload_messages(upload)
            data.update(
                upload_id=upload.get("id", data.get("upload_id")),
                allyy_status=upload.get("status"),
                processed_lines=upload.get("processedLines"),
                finished_at=upload.get("finished") or _now(),
                message="; ".join(messages) or None,
            )
            self.ledger.put(key, state, data)
            if state == FAILED:
                reason = "; ".join(messages) or "Allyy gave no reason"
                problems.append(f"{key}: upload {data['upload_id']} failed: {reason}")
            else:
                self.log.info(
                    "%s: upload %s finished, %s lines processed", key, data["upload_id"], data["processed_lines"]
                )
        if event.get("status") != "done":
            problems.append(f"waiting for Allyy ended with {event.get('status')}: {event.get('message')}")
        for key in event.get("keys") or []:
            entry = self.ledger.get(key)
            if entry is not None and entry.status == FAILED and key not in uploads:
                problems.append(f"{key}: refused by Allyy: {entry.data.get('message')}")
        return problems

    def summary(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        found = []
        for key in keys:
            entry = self.ledger.get(key)
            if entry is not None:
                figures = {k: entry.data.get(k) for k in ("upload_id", "rows", "bytes")}
                found.append({"key": key, "state": entry.status, **figures})
        line = ", ".join(f"{s['key']} {s['state']} ({s['rows']} rows)" for s in found)
        self.log.info("Allyy uploads: %s", line or "none")
        return found
