"""The Airflow adapter for Allyy uploads: the work is in :mod:`vendorflow.vendors.allyy.uploads`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from vendorflow.errors import VendorflowError


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
        self.conn_id, self.config, self.batch_rows = conn_id, config, batch_rows
        self.poll_interval, self.wait_timeout = poll_interval, wait_timeout

    def _ledger(self) -> Any:
        from vendorflow.vendors.allyy.uploads import open_ledger

        return open_ledger()

    def _uploader(self) -> Any:
        from vendorflow import settings
        from vendorflow.pipeline.storage import Lake
        from vendorflow.vendors.allyy.hook import AllyyHook
        from vendorflow.vendors.allyy.uploads import Uploader

        lake = Lake(settings.data_root())
        return Uploader(AllyyHook(conn_id=self.conn_id), self._ledger(), lake, self.log, batch_rows=self.batch_rows)

    def execute(self, context: Any) -> Any:
        from vendorflow.vendors.allyy import uploads

        config = Path(self.config) if self.config else uploads.config_path()
        targets = {t.dataset: t for t in uploads.load_targets(config)}
        params = context.get("params") or {}
        logical = context.get("logical_date")
        day = logical.strftime("%Y-%m-%d") if logical else None
        wanted = uploads.requested(
            context.get("triggering_asset_events"), params.get("partitions"), day, targets, config
        )
        if not wanted:
            self.log.info(
                "No partition to upload: the run was not triggered by a configured dataset and no partitions were given"
            )
            return []
        uploader = self._uploader()
        manifests = uploads.validated_manifests(uploader.lake, wanted)
        waits, rejected = uploader.send_all(wanted, targets, manifests, force=bool(params.get("force", False)))
        keys = [uploads.partition_key(d, dt) for d, dt in wanted]
        if not waits:
            if rejected:
                raise VendorflowError("Allyy refused the upload:\n  - " + "\n  - ".join(rejected))
            return uploader.summary(keys)
        if rejected:  # Allyy refused these already; the rest is still worth waiting for, then the task fails
            self.log.error("Allyy refused %d upload(s):\n  - %s", len(rejected), "\n  - ".join(rejected))
        from vendorflow.vendors.allyy.triggers import AllyyUploadTrigger

        self.log.info(
            "Waiting for Allyy to process %d upload(s) (checking every %g s, in the triggerer)",
            len(waits),
            self.poll_interval,
        )
        self.defer(
            trigger=AllyyUploadTrigger(
                conn_id=self.conn_id,
                uploads=waits,
                keys=keys,
                poll_interval=self.poll_interval,
                timeout=self.wait_timeout,
            ),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        uploader = self._uploader()
        problems = uploader.record(event)
        if problems:
            raise VendorflowError("Allyy upload failed:\n  - " + "\n  - ".join(problems))
        return uploader.summary(list(event.get("keys") or []))
