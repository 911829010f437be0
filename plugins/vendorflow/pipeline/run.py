"""From declaration to published partition: extract -> stream to Parquet -> validate -> publish or quarantine."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from vendorflow import settings
from vendorflow.accounts import DEFAULT as DEFAULT_ACCOUNT
from vendorflow.datasets.spec import DatasetSpec, ExtractContext
from vendorflow.errors import ValidationFailed, VendorResponseError
from vendorflow.pipeline.convert import BatchBuilder, RecordError
from vendorflow.pipeline.fingerprint import ContentHash
from vendorflow.pipeline.schema import arrow_schema
from vendorflow.pipeline.storage import (
    Lake,
    ParquetStream,
    StorageError,
    run_token,
    sealed_file,
    storage_error,
)
from vendorflow.pipeline.validate import validate_parquet
from vendorflow.progress import Progress, counted

log = logging.getLogger(__name__)


@dataclass
class DatasetResult:
    """What a run published (returned to XCom and put on the asset event; no secrets)."""

    dataset: str
    dt: str
    rows: int
    bytes: int
    path: str
    validation: str
    docs_url: str | None
    seconds: float
    requests: int | None = None
    # False: a re-extracted day whose content was the same as published, left alone (not validated
    # or republished again).
    changed: bool = True
    account: str = DEFAULT_ACCOUNT

    @property
    def label(self) -> str:
        """``<dataset> dt=<day>``, with the account when there are several."""
        return partition_label(self.dataset, self.dt, self.account)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        if not self.changed:
            return f"{self.label}: unchanged ({counted(self.rows, 'rows')}), left as published"
        made = f" from {counted(self.requests, 'requests')}" if self.requests is not None else ""
        return (
            f"{self.label}: {counted(self.rows, 'rows')}{made} in {self.seconds:.1f} s; "
            f"validation {self.validation}; published {self.path}"
        )


def account_label(account: str) -> str:
    """`` account=<a>`` for logs and errors, nothing for the default account (the only one without accounts)."""
    return "" if account == DEFAULT_ACCOUNT else f" account={account}"


def partition_label(dataset: str, dt: date | str, account: str = DEFAULT_ACCOUNT) -> str:
    """How logs and errors name one account's partition: ``<dataset> dt=<day>[ account=<a>]``."""
    return f"{dataset} dt={dt}{account_label(account)}"


def gx_root(lake: Lake, variable: Callable[[str], str | None] | None = None) -> Path:
    """Where validation results and Data Docs go: the Variable ``gx_root``, else ``<data_root>/_gx``
    for a filesystem data root, else this host's state directory (``variable`` reads the Variable:
    the API server reads it differently from a task)."""
    explicit = (variable or settings._variable)("gx_root")
    if explicit:
        return Path(explicit)
    if lake.is_local:
        return Path(lake.base) / "_gx"
    return settings.state_dir() / "gx"


def _requests_sent(hook: Any) -> int | None:
    client = getattr(hook, "__dict__", {}).get("client")  # only if the hook already built its client
    return getattr(client, "requests_sent", None)


def _requests_since(hook: Any, before: int) -> int | None:
    """Requests the hook's client sent since it had sent ``before``; ``None`` without a client."""
    sent = _requests_sent(hook)
    return None if sent is None else sent - before


def expected_rows(lake: Lake, dataset: str, dt: date, account: str = DEFAULT_ACCOUNT) -> int | None:
    """How many rows a day of ``dataset`` likely holds: what its published partition holds (a lookback
    re-extraction), else the day before's (a backfill or the next daily run); ``None`` when neither is
    published. A hint for fetching pages ahead, never a check."""
    for day in (dt, dt - timedelta(days=1)):
        manifest = lake.read_manifest(dataset, day, account)
        if manifest and manifest.get("rows") is not None:
            return int(manifest["rows"])
    return None


def shrink_floor(spec: DatasetSpec, previous_rows: int | None, *, accept_shrink: bool) -> int:
    """The fewest rows a new batch of a partition that already holds ``previous_rows`` may have.

    A day that had rows never becomes empty, nor shrinks below ``spec.shrink_limit`` of what it
    had, without the run being told to accept it: an empty or cut-short vendor answer must not
    replace a good day.
    """
    if accept_shrink or not previous_rows or spec.shrink_limit is None:
        return 0
    return max(1, math.ceil(previous_rows * spec.shrink_limit))


def run_dataset(
    spec: DatasetSpec,
    *,
    hook: Any,
    dt: date,
    run_id: str,
    try_number: int | None = None,
    inputs: Mapping[str, Any] | None = None,
    lake: Lake | None = None,
    progress_every: float = 10.0,
    logger: logging.Logger | None = None,
    accept_shrink: bool = False,
    skip_unchanged: bool = False,
    account: str = DEFAULT_ACCOUNT,
) -> DatasetResult:
    """Extract ``spec`` for ``dt``, stream it to a staging file, validate it and publish it (or quarantine it).

    With ``skip_unchanged`` a day whose content (:class:`ContentHash`) is what the published partition
    holds is neither validated nor republished: a lookback re-extraction of a day that did not change.
    """
    logger = logger or log
    lake = lake or Lake(settings.data_root())
    pii_mode = settings.pii_mode()
    pii_key = settings.pii_hmac_key() if pii_mode == "hmac" and any(c.pii for c in spec.columns) else None
    schema = arrow_schema(spec, pii_mode)
    builder = BatchBuilder(spec, schema, pii_mode=pii_mode, pii_key=pii_key, account=account)
    token = run_token(run_id if account == DEFAULT_ACCOUNT else f"{account}-{run_id}", try_number)
    where = partition_label(spec.key_name, dt, account)
    removed = lake.clean_staging(spec.key_name)
    if removed:
        logger.info("%s: removed %d staging file(s) left by runs that died", spec.key_name, removed)
    try:
        staged = lake.staging_file(spec.key_name, dt, token)
    except OSError as exc:
        raise storage_error(
            spec.key_name, dt, lake.join("_staging", spec.key_name), exc, "creating staging folder"
        ) from None
    progress = Progress(spec.key_name, log=logger, every=progress_every)
    ctx = ExtractContext(
        hook=hook,
        dt=dt,
        inputs=dict(inputs or {}),
        progress=progress,
        log=logger,
        account=account,
        expected_rows=None if spec.snapshot else expected_rows(lake, spec.key_name, dt, account),
    )
    requests_before = _requests_sent(hook) or 0
    started = time.monotonic()
    fingerprint = ContentHash()

    logger.info("%s: extracting (%s)", where, "snapshot" if spec.snapshot else "records of the day")
    try:
        stream = ParquetStream(
            staged, schema, **({"row_group_rows": spec.row_group_rows} if spec.row_group_rows else {})
        )
    except OSError as exc:
        raise storage_error(spec.key_name, dt, staged, exc, "writing") from None
    try:
        for page in spec.extract(ctx):
            received = datetime.now(timezone.utc)
            try:
                batch = builder.build(page, received)
            except RecordError as exc:
                raise VendorResponseError(hook.vendor_name, page.source, str(exc)) from None
            try:
                stream.write(batch)
            except OSError as exc:  # a full disk, a lost mount: say which dataset and file
                raise storage_error(spec.key_name, dt, staged, exc, "writing") from None
            fingerprint.add(batch)
            progress.advance(1, batch.num_rows)
        try:
            stream.close()
        except OSError as exc:
            raise storage_error(spec.key_name, dt, staged, exc, "writing") from None
    except BaseException:
        stream.abort()
        raise
    logger.info("%s", progress.line())
    drift = builder.drift()
    if drift:
        logger.warning("%s: %s", where, describe_drift(drift))

    try:
        with lake.partition_lock(spec.key_name, dt, account):
            return _validate_and_publish(
                spec,
                account=account,
                lake=lake,
                hook=hook,
                dt=dt,
                run_id=run_id,
                token=token,
                staged=staged,
                stream_rows=stream.rows,
                ctx=ctx,
                schema_names=schema.names,
                drift=drift,
                started=started,
                requests_before=requests_before,
                accept_shrink=accept_shrink,
                logger=logger,
                content_hash=fingerprint.hexdigest(),
                skip_unchanged=skip_unchanged,
            )
    except OSError as exc:
        if isinstance(exc, StorageError):
            raise
        raise storage_error(
            spec.key_name, dt, lake.data_file(spec.key_name, dt, account), exc, "publishing to"
        ) from None
    finally:
        staged.unlink(missing_ok=True)
        sealed_file(staged).unlink(missing_ok=True)


def _validate_and_publish(
    spec: DatasetSpec,
    *,
    account: str,
    lake: Lake,
    hook: Any,
    dt: date,
    run_id: str,
    token: str,
    staged: Path,
    stream_rows: int,
    ctx: ExtractContext,
    schema_names: list[str],
    drift: dict[str, Any],
    started: float,
    requests_before: int,
    accept_shrink: bool,
    logger: logging.Logger,
    content_hash: str,
    skip_unchanged: bool,
) -> DatasetResult:
    """Under the partition's lock: compare with what is published, validate, then publish or quarantine."""
    previous = lake.read_manifest(spec.key_name, dt, account)
    if skip_unchanged and previous and previous.get("content_hash") == content_hash:
        return DatasetResult(
            dataset=spec.key_name,
            dt=dt.isoformat(),
            rows=int(previous.get("rows") or 0),
            bytes=int(previous.get("bytes") or 0),
            path=lake.url(lake.data_file(spec.key_name, dt, account)),
            validation=str(previous.get("validation") or ""),
            docs_url=None,
            seconds=round(time.monotonic() - started, 3),
            requests=_requests_since(hook, requests_before),
            changed=False,
            account=account,
        )
    previous_rows = int(previous["rows"]) if previous and previous.get("rows") is not None else None
    min_rows = shrink_floor(spec, previous_rows, accept_shrink=accept_shrink)
    facts = {
        "dt": dt.isoformat(),
        "day_start": ctx.day_start.isoformat(),
        "day_end": ctx.day_end.isoformat(),
        "rows": stream_rows,
        "min_rows": min_rows,
        **ctx.facts,
    }
    # Whole when small; a big day in chunks, so validation's memory follows the chunk too.
    batch_name = f"dt={dt}" if account == DEFAULT_ACCOUNT else f"dt={dt}/{account}"
    outcome = validate_parquet(spec, staged, facts=facts, batch_name=batch_name, run_name=token, gx_root=gx_root(lake))
    seconds = time.monotonic() - started
    requests = _requests_since(hook, requests_before)

    if not outcome.success:
        folder = lake.quarantine(staged, spec.key_name, dt, token, outcome.result, account)
        failures = "\n  - ".join(outcome.failures)
        shrunk = ""
        if stream_rows < min_rows:
            shrunk = (
                f"\nThe published partition holds {previous_rows:,} rows (run {previous.get('run_id')}); "
                f"this run got {stream_rows:,}, below the {spec.shrink_limit:.0%} it may shrink to. If the vendor "
                "really "
                f"holds fewer now, trigger the DAG again with the param accept_shrink=true."
            )
        raise ValidationFailed(
            f"{partition_label(spec.key_name, dt, account)}: {len(outcome.failures)} of {outcome.evaluated} "
            "expectations failed:\n"
            f"  - {failures}{shrunk}\nThe batch ({stream_rows:,} rows) is quarantined at {lake.url(folder)}; "
            f"the published partition is unchanged. Data Docs: {outcome.docs_url}"
        )

    manifest = {
        "dataset": spec.key_name,
        "dt": dt.isoformat(),
        "account": account,
        "rows": stream_rows,
        "run_id": run_id,
        "run_token": token,
        "published_at": datetime.now(timezone.utc).isoformat(),
        "validation": outcome.summary(),
        "parameters": facts,
        "columns": schema_names,
        "schema_drift": drift,
        "replaced_rows": previous_rows,
        "content_hash": content_hash,
    }
    path = lake.publish(staged, spec.key_name, dt, manifest, account)
    result = DatasetResult(
        dataset=spec.key_name,
        dt=dt.isoformat(),
        rows=stream_rows,
        bytes=lake.fs.size(path),
        path=lake.url(path),
        validation=outcome.summary(),
        docs_url=outcome.docs_url,
        seconds=round(seconds, 3),
        requests=requests,
        account=account,
    )
    logger.info("%s", result.line())
    return result


def describe_drift(drift: Mapping[str, Any]) -> str:
    """One warning line about fields the vendor added, renamed or stopped sending."""
    parts = []
    unmapped = drift.get("unmapped_fields") or {}
    if unmapped:
        shown = ", ".join(f"{name!r} ({count:,} records)" for name, count in list(unmapped.items())[:20])
        parts.append(
            f"the vendor sent {len(unmapped)} field(s) that no column maps, dropped: {shown}; new in the API? "
            f"Declare them in the dataset's columns, or in its ignore_fields if they are dropped on purpose"
        )
    absent = drift.get("absent_fields") or []
    if absent:
        parts.append(
            f"{len(absent)} declared field(s) were in no record at all, so their columns are all null: "
            f"{', '.join(repr(a) for a in absent)}; renamed or removed by the vendor?"
        )
    return "; ".join(parts)
