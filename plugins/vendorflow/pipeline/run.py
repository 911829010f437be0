"""From declaration to published partition: extract -> stream to Parquet -> validate -> publish or quarantine."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Mapping


from vendorflow import settings
from vendorflow.datasets.spec import DatasetSpec, ExtractContext
from vendorflow.errors import ValidationFailed, VendorResponseError
from vendorflow.pipeline.convert import BatchBuilder, RecordError
from vendorflow.pipeline.schema import arrow_schema
from vendorflow.pipeline.storage import Lake, ParquetStream, run_token
from vendorflow.pipeline.validate import validate_parquet
from vendorflow.progress import Progress

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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        made = f" from {self.requests:,} requests" if self.requests is not None else ""
        return (
            f"{self.dataset} dt={self.dt}: {self.rows:,} rows{made} in {self.seconds:.1f} s; "
            f"validation {self.validation}; published {self.path}"
        )


def gx_root(lake: Lake) -> Path:
    explicit = settings._variable("gx_root")
    if explicit:
        return Path(explicit)
    if lake.is_local:
        return Path(lake.base) / "_gx"
    return settings.state_dir() / "gx"


def _requests_sent(hook: Any) -> int | None:
    client = getattr(hook, "__dict__", {}).get("client")  # only if the hook already built its client
    return getattr(client, "requests_sent", None)


def run_dataset(
    spec: DatasetSpec,
    *,
    hook: Any,
    dt: date,
    run_id: str,
    try_number: int | None = None,
    params: Mapping[str, Any] | None = None,
    lake: Lake | None = None,
    progress_every: float = 10.0,
    logger: logging.Logger | None = None,
) -> DatasetResult:
    logger = logger or log
    lake = lake or Lake(settings.data_root())
    pii_mode = settings.pii_mode()
    pii_key = settings.pii_hmac_key() if pii_mode == "hmac" and any(c.pii for c in spec.columns) else None
    schema = arrow_schema(spec, pii_mode)
    builder = BatchBuilder(spec, schema, pii_mode=pii_mode, pii_key=pii_key)
    token = run_token(run_id, try_number)
    staged = lake.staging_file(spec.key_name, dt, token)
    progress = Progress(spec.key_name, log=logger, every=progress_every)
    ctx = ExtractContext(hook=hook, dt=dt, params=dict(params or {}), progress=progress, log=logger)
    requests_before = _requests_sent(hook) or 0
    started = time.monotonic()

    logger.info("%s dt=%s: extracting (%s)", spec.key_name, dt, "snapshot" if spec.snapshot else "records of the day")
    stream = ParquetStream(staged, schema, **({"row_group_rows": spec.row_group_rows} if spec.row_group_rows else {}))
    try:
        for page in spec.extract(ctx):
            received = datetime.now(timezone.utc)
            try:
                batch = builder.build(page, received)
            except RecordError as exc:
                raise VendorResponseError(hook.vendor_name, page.source, str(exc)) from None
            stream.write(batch)
            progress.advance(1, batch.num_rows)
        size = stream.close()
    except BaseException:
        stream.abort()
        raise
    logger.info("%s", progress.line())

    parameters = {
        "dt": dt.isoformat(),
        "day_start": ctx.day_start.isoformat(),
        "day_end": ctx.day_end.isoformat(),
        "rows": stream.rows,
        **ctx.parameters,
    }
    try:
        # Whole when small; a big day in chunks, so validation's memory follows the chunk too.
        outcome = validate_parquet(
            spec, staged, parameters=parameters, batch_name=f"dt={dt}", run_name=token, gx_root=gx_root(lake)
        )
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    seconds = time.monotonic() - started
    requests = (_requests_sent(hook) or 0) - requests_before if _requests_sent(hook) is not None else None

    if not outcome.success:
        folder = lake.quarantine(staged, spec.key_name, dt, token, outcome.result)
        failures = "\n  - ".join(outcome.failures)
        raise ValidationFailed(
            f"{spec.key_name} dt={dt}: {len(outcome.failures)} of {outcome.evaluated} expectations failed:\n"
            f"  - {failures}\nThe batch ({stream.rows:,} rows) is quarantined at {lake.url(folder)}; "
            f"the published partition is unchanged. Data Docs: {outcome.docs_url}"
        )

    manifest = {
        "dataset": spec.key_name,
        "dt": dt.isoformat(),
        "rows": stream.rows,
        "bytes": size,
        "run_id": run_id,
        "published_at": datetime.now(timezone.utc).isoformat(),
        "validation": outcome.summary(),
        "parameters": parameters,
        "columns": schema.names,
    }
    path = lake.publish(staged, spec.key_name, dt, manifest)
    result = DatasetResult(
        dataset=spec.key_name,
        dt=dt.isoformat(),
        rows=stream.rows,
        bytes=size,
        path=lake.url(path),
        validation=outcome.summary(),
        docs_url=outcome.docs_url,
        seconds=round(seconds, 3),
        requests=requests,
    )
    logger.info("%s", result.line())
    return result
