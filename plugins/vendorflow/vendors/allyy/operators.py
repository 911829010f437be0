"""Uploading validated partitions to Allyy datasources, once each, and waiting for Allyy in the triggerer.

What goes where is configuration (:func:`load_targets`, ``include/allyy_uploads.json``):
a dataset, the Allyy ``dataSetId`` and ``datasourceId`` it goes to, and the
file format. Each partition is streamed from Parquet to a CSV or JSON file
(one row group at a time, so a large partition is never held in memory),
uploaded, and recorded in the ``allyy_uploads`` ledger under
``<vendor>/<dataset>/dt=<date>``: a rerun skips what Allyy already finished
unless ``force`` is set, waits for what is still processing, and checks what
a crashed attempt may have sent before sending it again.

File contents (both formats, the same text): the partition's columns in
order; dates ``YYYY-MM-DD``; instants ISO 8601 in UTC with ``Z``; money as
its exact decimal text (a JSON string, so no digit is lost); booleans
``true``/``false``; nulls empty (CSV) or ``null`` (JSON).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

from vendorflow.errors import ConfigError, ValidationFailed, VendorAPIError, VendorflowError

if TYPE_CHECKING:
    import pyarrow as pa

CONFIG_ENV = "VENDORFLOW_ALLYY_UPLOADS"
FORMATS = ("csv", "json")
_DATASET = re.compile(r"^[a-z][a-z0-9_]*/[a-z][a-z0-9_]*$")
_PARTITION = re.compile(r"^(?P<dataset>[a-z][a-z0-9_]*/[a-z][a-z0-9_]*)/dt=(?P<dt>\d{4}-\d{2}-\d{2})$")


# --- configuration: read at DAG parse time, so plain JSON and nothing else ----------------------


@dataclass(frozen=True)
class UploadTarget:
    """Where one dataset's partitions go."""

    dataset: str
    data_set_id: str
    datasource_id: str
    format: Literal["csv", "json"]
    columns: tuple[str, ...] | None = None


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
        raise ConfigError(f"{path}: the Allyy upload configuration is missing (set {CONFIG_ENV} or create it)") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    entries = document.get("uploads") if isinstance(document, Mapping) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected an object with an 'uploads' list")
    targets: list[UploadTarget] = []
    for number, entry in enumerate(entries, start=1):
        where = f"{path}: uploads[{number - 1}]"
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
        if columns is not None and (not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns)):
            raise ConfigError(f"{where}: columns must be a non-empty list of column names")
        if any(t.dataset == entry["dataset"] for t in targets):
            raise ConfigError(f"{where}: {entry['dataset']} is configured twice")
        targets.append(UploadTarget(
            str(entry["dataset"]), str(entry["dataSetId"]), str(entry["datasourceId"]), entry["format"],
            tuple(columns) if columns else None,
        ))
    return tuple(targets)


def partition_key(dataset: str, dt: date | str) -> str:
    """The ledger key of a partition: the path under the data root."""
    return f"{dataset}/dt={dt}"


def parse_partition(text: str, default_dt: str | None = None) -> tuple[str, str]:
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


# --- Parquet to the upload file, streamed ------------------------------------------------------------


def wire_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The batch with dates, instants and money as the text the upload file carries."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = []
    for column in batch.columns:
        kind = column.type
        if pa.types.is_timestamp(kind):
            utc = column.cast(pa.timestamp(kind.unit, tz="UTC")) if kind.tz is None else column
            column = pc.strftime(utc, format="%Y-%m-%dT%H:%M:%SZ")
        elif pa.types.is_date(kind) or pa.types.is_decimal(kind):
            column = column.cast(pa.string())
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


def export_partition(
    source: IO[bytes] | str | Path, out: Path, fmt: str, *, columns: Iterable[str] | None = None, batch_rows: int = 64 * 1024
) -> tuple[int, int]:
    """Write a Parquet file as CSV (header row) or a JSON array of objects; returns ``(rows, bytes)``.

    One record batch at a time (``iter_batches``), so memory is bounded by the
    batch, not the partition.
    """
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt not in FORMATS:
        raise ValueError(f"format must be csv or json, not {fmt!r}")
    parquet = pq.ParquetFile(source)
    wanted = list(columns) if columns else None
    if wanted:
        unknown = [c for c in wanted if c not in parquet.schema_arrow.names]
        if unknown:
            raise ConfigError(f"columns {unknown} are not in the partition (it has {parquet.schema_arrow.names})")
    rows = 0
    with out.open("wb") as handle:
        if fmt == "csv":
            empty = _empty_batch(parquet.schema_arrow, wanted)  # the header, even for an empty partition
            with pacsv.CSVWriter(handle, empty.schema) as writer:
                for batch in parquet.iter_batches(batch_size=batch_rows, columns=wanted):
                    writer.write_batch(wire_batch(batch))
                    rows += batch.num_rows
        else:
            handle.write(b"[")
            first = True
            for batch in parquet.iter_batches(batch_size=batch_rows, columns=wanted):
                for record in wire_batch(batch).to_pylist():
                    handle.write((b"\n" if first else b",\n") + json.dumps(record, ensure_ascii=False, allow_nan=False).encode())
                    first = False
                rows += batch.num_rows
            handle.write(b"\n]\n")
    return rows, out.stat().st_size


def _empty_batch(schema: pa.Schema, columns: list[str] | None) -> pa.RecordBatch:
    import pyarrow as pa

    chosen = pa.schema([schema.field(c) for c in columns]) if columns else schema
    return wire_batch(pa.RecordBatch.from_pylist([], schema=chosen))


# --- which partitions a run is about ----------------------------------------------------------


def triggered_partitions(events: Any, targets: Iterable[UploadTarget]) -> list[tuple[str, str]]:
    """``(dataset, dt)`` of every asset event of a configured dataset (DatasetOperator puts ``dt`` in the extra)."""
    from vendorflow.assets import asset

    found: list[tuple[str, str]] = []
    if not events:
        return found
    for target in targets:
        try:
            received = events[asset(target.dataset)]
        except (KeyError, TypeError):
            continue
        for event in received:
            extra = getattr(event, "extra", None) or {}
            dt = extra.get("dt")
            if not dt:
                raise VendorflowError(f"an asset event of {target.dataset} carries no dt in its extra ({extra!r})")
            found.append((target.dataset, str(dt)))
    return found


# --- the operator -----------------------------------------------------------------------------


class AllyyUploadOperator(BaseOperator):
    """Upload each new validated partition of the configured datasets to its Allyy datasource.

    Partitions come from the run's triggering asset events and from the
    ``partitions`` param (``["recreativ/offer_statistics/dt=2024-03-01"]``, for
    manual runs); ``force`` (param) uploads again what Allyy already finished.
    Only published partitions with a manifest (they passed validation) are
    uploaded; asking for any other fails the task before anything is sent.
    The task then defers to :class:`~vendorflow.vendors.allyy.triggers.AllyyUploadTrigger`
    until Allyy reports every upload finished or failed; a failed upload fails
    the task with Allyy's own messages.

    :param conn_id: the Allyy connection (``allyy_default``).
    :param config: the upload configuration file (``include/allyy_uploads.json``).
    :param poll_interval: seconds between status checks while waiting.
    :param wait_timeout: seconds to wait for Allyy before failing.
    """

    template_fields = ("conn_id", "config")
    ui_color = "#f4ecf7"

    def __init__(
        self,
        *,
        conn_id: str | None = None,
        config: str | None = None,
        poll_interval: float = 30.0,
        wait_timeout: float = 6 * 3600.0,
        batch_rows: int = 64 * 1024,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.config = config
        self.poll_interval = poll_interval
        self.wait_timeout = wait_timeout
        self.batch_rows = batch_rows

    # -- helpers ---------------------------------------------------------------------------

    def _ledger(self) -> Any:
        from vendorflow.vendors.allyy.datasets import UPLOADS_LEDGER
        from vendorflow.ledger import Ledger

        return Ledger(UPLOADS_LEDGER)

    def _requested(self, context: Any, targets: dict[str, UploadTarget]) -> list[tuple[str, str]]:
        params = context.get("params") or {}
        wanted = triggered_partitions(context.get("triggering_asset_events"), targets.values())
        manual = params.get("partitions") or []
        if isinstance(manual, str):
            manual = [manual]
        logical = context.get("logical_date")
        for text in manual:
            wanted.append(parse_partition(str(text), logical.strftime("%Y-%m-%d") if logical else None))
        unknown = sorted({d for d, _ in wanted if d not in targets})
        if unknown:
            raise ConfigError(f"{', '.join(unknown)}: not configured for upload in {self.config or config_path()}")
        return list(dict.fromkeys(wanted))  # once each, in order

    def _check_validated(self, lake: Any, wanted: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
        """The manifest of each partition; refuses the run if any is not a validated, published partition."""
        manifests: dict[str, dict[str, Any]] = {}
        refused = []
        for dataset, dt in wanted:
            key = partition_key(dataset, dt)
            manifest = lake.read_manifest(dataset, dt)
            data_file = f"{lake.partition_path(dataset, dt)}/data.parquet"
            if manifest is None or manifest.get("dataset") != dataset or not lake.fs.exists(data_file):
                quarantine = lake.join("_quarantine", dataset, f"dt={dt}")
                why = "it failed validation and is quarantined" if lake.fs.exists(quarantine) else "no validated partition is published"
                refused.append(f"{key}: {why}")
            else:
                manifests[key] = manifest
        if refused:
            raise ValidationFailed(
                "Only partitions that passed validation are uploaded to Allyy; nothing was sent. Refused:\n  - "
                + "\n  - ".join(refused)
            )
        return manifests

    # -- execute ---------------------------------------------------------------------------

    def execute(self, context: Any) -> Any:
        from vendorflow import settings
        from vendorflow.vendors.allyy.hook import AllyyHook
        from vendorflow.pipeline.storage import Lake

        targets = {t.dataset: t for t in load_targets(Path(self.config) if self.config else None)}
        wanted = self._requested(context, targets)
        if not wanted:
            self.log.info("No partition to upload: the run was not triggered by a configured dataset and no partitions were given")
            return []
        params = context.get("params") or {}
        force = bool(params.get("force", False))
        lake = Lake(settings.data_root())
        manifests = self._check_validated(lake, wanted)
        ledger = self._ledger()
        hook = AllyyHook(conn_id=self.conn_id)
        waits: list[dict[str, Any]] = []
        rejected: list[str] = []
        keys = [partition_key(d, dt) for d, dt in wanted]

        for dataset, dt in wanted:
            key = partition_key(dataset, dt)
            target = targets[dataset]
            entry = ledger.get(key)
            if entry is not None and not force:
                if entry.status == "finished":
                    self.log.info("%s: already uploaded as %s (%s rows, finished %s); not sent again (force=true would)",
                                  key, entry.data.get("upload_id"), entry.data.get("rows"), entry.data.get("finished_at"))
                    continue
                if entry.status == "processing":
                    self.log.info("%s: upload %s is still processing at Allyy; waiting for it", key, entry.data.get("upload_id"))
                    waits.append(self._wait_spec(key, entry.data))
                    continue
                if entry.status == "sending":
                    arrived = hook.find_upload(
                        target.data_set_id, target.datasource_id, size_bytes=entry.data.get("bytes"),
                        created_after=datetime.fromisoformat(entry.data["requested_at"]) - hook.upload_reconcile_window,
                    )
                    if arrived is not None:
                        self.log.info("%s: an earlier attempt's upload %s did arrive; waiting for it", key, arrived.get("id"))
                        data = {**entry.data, "upload_id": arrived.get("id"), "allyy_status": arrived.get("status")}
                        ledger.put(key, "processing", data)
                        waits.append(self._wait_spec(key, data))
                        continue
            try:
                waits.append(self._upload(hook, ledger, lake, target, dt, key, manifests[key], entry.status if entry else None))
            except VendorAPIError as exc:
                rejected.append(f"{key}: {exc}")

        if not waits:
            self._raise_if_rejected(rejected)
            return self._summary(ledger, keys)
        if rejected:
            # Allyy refused these already; the rest is still worth waiting for, then the task fails.
            self.log.error("Allyy refused %d upload(s):\n  - %s", len(rejected), "\n  - ".join(rejected))
        from vendorflow.vendors.allyy.triggers import AllyyUploadTrigger

        self.log.info("Waiting for Allyy to process %d upload(s) (checking every %g s, in the triggerer)", len(waits), self.poll_interval)
        self.defer(
            trigger=AllyyUploadTrigger(conn_id=self.conn_id, uploads=waits, keys=keys,
                                       poll_interval=self.poll_interval, timeout=self.wait_timeout),
            method_name="execute_complete",
        )

    @staticmethod
    def _wait_spec(key: str, data: Mapping[str, Any]) -> dict[str, Any]:
        return {"key": key, "data_set_id": data["data_set_id"], "datasource_id": data["datasource_id"],
                "upload_id": data["upload_id"], "requested_at": data["requested_at"]}

    def _upload(self, hook: Any, ledger: Any, lake: Any, target: UploadTarget, dt: str, key: str,
                manifest: Mapping[str, Any], seen_status: str | None) -> dict[str, Any]:
        from vendorflow.vendors.allyy.hook import UPLOAD_WIRE
        from vendorflow.progress import Progress

        progress = Progress(f"allyy upload {key}", log=self.log, unit="files")
        source = f"{lake.partition_path(target.dataset, dt)}/data.parquet"
        suffix = UPLOAD_WIRE[target.format].suffix
        with tempfile.TemporaryDirectory(prefix="vendorflow-allyy-") as folder:
            out = Path(folder) / f"{target.dataset.replace('/', '__')}__{dt}{suffix}"
            with lake.fs.open(source, "rb") as handle:
                rows, size = export_partition(handle, out, target.format, columns=target.columns, batch_rows=self.batch_rows)
            if manifest.get("rows") is not None and rows != manifest["rows"]:
                raise VendorflowError(f"{key}: the partition holds {rows} rows but its manifest says {manifest['rows']}; "
                                      "it changed while being read, nothing was sent")
            requested_at = datetime.now(timezone.utc)
            data: dict[str, Any] = {
                "dataset": target.dataset, "partition": dt, "format": target.format,
                "data_set_id": target.data_set_id, "datasource_id": target.datasource_id,
                "upload_id": None, "rows": rows, "bytes": size, "allyy_status": None, "processed_lines": None,
                "requested_at": requested_at.isoformat(), "finished_at": None, "message": None,
                "published_at": manifest.get("published_at"),
            }
            # Claimed before the request (a crash from here on is checked at Allyy, not re-sent blindly), and only
            # from the state this task saw: another run that got there first keeps the partition.
            if not ledger.put(key, "sending", data, only_if=seen_status):
                raise VendorflowError(f"{key}: another run started uploading it meanwhile; nothing was sent by this one")
            self.log.info("%s: uploading %s rows (%s bytes of %s) to Allyy datasource %s",
                          key, f"{rows:,}", f"{size:,}", target.format.upper(), target.datasource_id)
            try:
                upload = hook.upload_file(target.data_set_id, target.datasource_id, target.format, out, filename=out.name)
            except VendorAPIError as exc:
                ledger.put(key, "failed", {**data, "message": exc.vendor_message, "finished_at": datetime.now(timezone.utc).isoformat()})
                raise
        progress.advance(1, rows)
        self.log.info("%s", progress.line())
        data.update(upload_id=upload.get("id"), allyy_status=upload.get("status"))
        ledger.put(key, "processing", data)
        self.log.info("%s: Allyy accepted it as upload %s", key, upload.get("id"))
        return self._wait_spec(key, data)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from vendorflow.vendors.allyy.hook import upload_messages, upload_state

        ledger = self._ledger()
        problems: list[str] = []
        for key, upload in (event.get("uploads") or {}).items():
            entry = ledger.get(key)
            data = dict(entry.data) if entry else {}
            state = upload_state(upload)
            messages = upload_messages(upload)
            data.update(
                upload_id=upload.get("id", data.get("upload_id")), allyy_status=upload.get("status"),
                processed_lines=upload.get("processedLines"), finished_at=upload.get("finished") or datetime.now(timezone.utc).isoformat(),
                message="; ".join(messages) or None,
            )
            ledger.put(key, state, data)
            if state == "failed":
                problems.append(f"{key}: upload {data['upload_id']} failed: {'; '.join(messages) or 'Allyy gave no reason'}")
            else:
                self.log.info("%s: upload %s finished, %s lines processed", key, data["upload_id"], data["processed_lines"])
        if event.get("status") != "done":
            problems.append(f"waiting for Allyy ended with {event.get('status')}: {event.get('message')}")
        keys = list(event.get("keys") or [])
        for key in keys:
            entry = ledger.get(key)
            if entry is not None and entry.status == "failed" and key not in (event.get("uploads") or {}):
                problems.append(f"{key}: refused by Allyy: {entry.data.get('message')}")
        if problems:
            raise VendorflowError("Allyy upload failed:\n  - " + "\n  - ".join(problems))
        return self._summary(ledger, keys)

    @staticmethod
    def _raise_if_rejected(rejected: list[str]) -> None:
        if rejected:
            raise VendorflowError("Allyy refused the upload:\n  - " + "\n  - ".join(rejected))

    def _summary(self, ledger: Any, keys: list[str]) -> list[dict[str, Any]]:
        summary = []
        for key in keys:
            entry = ledger.get(key)
            if entry is not None:
                summary.append({"key": key, "state": entry.status, **{k: entry.data.get(k) for k in ("upload_id", "rows", "bytes")}})
        self.log.info("Allyy uploads: %s", ", ".join(f"{s['key']} {s['state']} ({s['rows']} rows)" for s in summary) or "none")
        return summary


