"""The operator behind every extraction task: one declared dataset, the run's day (and its lookback)."""

from __future__ import annotations

from datetime import date
from typing import Any

from airflow.sdk import BaseOperator

from vendorflow.assets import asset


class DatasetOperator(BaseOperator):
    """Extract ``dataset`` for the run's day, stream it to Parquet, validate it and publish it.

    The run's day is its data interval's start (:func:`vendorflow.operators.runs.run_day`), for
    every kind of run. A daily dataset whose vendor data changes after its day (``lookback_days``)
    also re-extracts the days before it and republishes those whose content changed; a backfill run
    covers only its own day. A snapshot (the vendor's whole list as it is now) is skipped in backfill
    runs, and published with a warning by a manual run for an old day.

    The partition ``<data_root>/<vendor>/<dataset>/dt=<dt>`` is replaced
    atomically on success; a batch that fails validation goes to quarantine and
    the task fails. The dataset's asset gets an event (with ``dt``, rows and
    path in its extra, and ``partitions``: every day published) only when a partition was published.

    :param dataset: ``<vendor>/<dataset>``, as declared in ``vendorflow.datasets``.
    :param account: the vendor account (:mod:`vendorflow.accounts`); its rows, file and asset event carry it.
    :param conn_id: the vendor connection; defaults to the account's.
    :param dt: the partition date, ``YYYY-MM-DD`` (templated); by default the run's day.
    :param extract_params: extra values handed to the extractor (templated).
    """

    template_fields = ("dataset", "account", "conn_id", "dt", "extract_params")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        dataset: str,
        account: str = "default",
        conn_id: str | None = None,
        dt: str | None = None,
        extract_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("task_id", dataset.partition("/")[2] or dataset)
        kwargs.setdefault("outlets", [asset(dataset)])
        kwargs.setdefault("doc_md", f"Extracts, validates and publishes `{dataset}` for the run's day.")
        super().__init__(**kwargs)
        self.dataset = dataset
        self.account = account
        self.conn_id = conn_id
        self.dt = dt
        self.extract_params = extract_params or {}

    def _day(self, context: Any) -> date:
        from vendorflow.errors import ConfigError
        from vendorflow.operators.runs import run_day

        if self.dt in (None, "", "None"):
            return run_day(context)
        try:
            return date.fromisoformat(str(self.dt).strip())
        except ValueError:
            raise ConfigError(f"dt must be a date as YYYY-MM-DD, not {self.dt!r}") from None

    def execute(self, context: Any) -> dict[str, Any]:
        from vendorflow import accounts, datasets
        from vendorflow.operators.runs import check_snapshot, run_kind, skipped_when_not_available
        from vendorflow.vendors import get_hook

        spec = datasets.get(self.dataset)
        day, kind = self._day(context), run_kind(context)
        check_snapshot(spec, day, kind, self.log)
        hook = get_hook(spec.vendor, accounts.conn_id(spec.vendor, self.account, self.conn_id))
        with skipped_when_not_available():
            outcome = self._run(spec, hook, day, kind, context)
        event = outcome.event()
        context["outlet_events"][asset(self.dataset)].extra = event
        return event

    def _run(self, spec: Any, hook: Any, day: date, kind: str, context: Any) -> Any:
        from vendorflow.operators.runs import accept_shrink, lookback_for
        from vendorflow.pipeline.window import run_window

        return run_window(
            spec,
            hook=hook,
            day=day,
            lookback=lookback_for(spec, kind, self.log),
            run_id=context["run_id"],
            try_number=getattr(context.get("ti"), "try_number", None),
            inputs=self.extract_params,
            logger=self.log,
            accept_shrink=accept_shrink(context),
            account=self.account,
        )
