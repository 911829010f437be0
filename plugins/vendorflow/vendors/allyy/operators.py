"""The Airflow adapter for Allyy uploads: the work is in :mod:`vendorflow.vendors.allyy.uploads`."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator


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

    :param account: the Allyy account; it uploads the targets whose ``allyyAccount`` names it.
    :param conn_id: the Allyy connection; by default the account's.
    :param config: the upload configuration file (``include/allyy_uploads.json``).
    :param poll_interval: seconds between status checks while waiting.
    :param wait_timeout: seconds to wait for Allyy before failing.
    """

    template_fields = ("account", "conn_id", "config")
    ui_color = "#f4ecf7"

    def __init__(
        self,
        *,
        account: str = "default",
        conn_id: str | None = None,
        config: str | None = None,
        poll_interval: float = 30.0,
        wait_timeout: float = 6 * 3600.0,
        batch_rows: int = 64 * 1024,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.account, self.conn_id, self.config, self.batch_rows = account, conn_id, config, batch_rows
        self.poll_interval, self.wait_timeout = poll_interval, wait_timeout

    def _ledger(self) -> Any:
        from vendorflow.vendors.allyy.uploads import open_ledger

        return open_ledger()

    def _uploader(self) -> Any:
        from vendorflow import accounts, settings
        from vendorflow.pipeline.storage import Lake
        from vendorflow.vendors.allyy.hook import AllyyHook
        from vendorflow.vendors.allyy.uploads import Uploader

        lake = Lake(settings.data_root())
        self.conn_id = accounts.conn_id("allyy", self.account, self.conn_id)
        return Uploader(AllyyHook(conn_id=self.conn_id), self._ledger(), lake, self.log, batch_rows=self.batch_rows)

    def execute(self, context: Any) -> Any:
        from vendorflow.operators.runs import run_day, run_kind
        from vendorflow.vendors.allyy import uploads
        from vendorflow.vendors.allyy.triggers import AllyyUploadTrigger

        params = context.get("params") or {}
        events, by_hand = context.get("triggering_asset_events"), run_kind(context) == "manual"
        groups = uploads.run_partitions(self.config, events, params.get("partitions"), run_day(context),
                                        by_hand=by_hand, allyy_account=self.account)  # fmt: skip
        if not any(wanted for _, wanted in groups):
            self.log.info("Nothing to upload: no configured dataset triggered the run and none is configured")
            return []
        uploader = self._uploader()
        waits, rejected, keys = uploader.send_groups(groups, force=bool(params.get("force", False)))
        if rejected and not waits:
            raise uploads.refused(rejected)
        if rejected:  # refused already; the rest is still worth waiting for, then the task fails
            self.log.error("%s", uploads.refused(rejected))
        if not waits:
            return uploader.summary(keys)
        self.log.info("Waiting in the triggerer for Allyy to process %d upload(s), every %g s", len(waits),
                      self.poll_interval)  # fmt: skip
        trigger = AllyyUploadTrigger(conn_id=self.conn_id, uploads=waits, keys=keys, poll_interval=self.poll_interval,
                                     timeout=self.wait_timeout)  # fmt: skip
        self.defer(trigger=trigger, method_name="execute_complete")

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from vendorflow.vendors.allyy.uploads import refused

        uploader = self._uploader()
        problems = uploader.record(event)
        if problems:
            raise refused(problems, "Allyy upload failed")
        return uploader.summary(list(event.get("keys") or []))
