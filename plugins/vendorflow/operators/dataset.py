"""The operator behind every extraction task: one declared dataset, one logical date."""

from __future__ import annotations

from datetime import date
from typing import Any

from airflow.sdk import BaseOperator

from vendorflow.assets import asset


class DatasetOperator(BaseOperator):
    """Extract ``dataset`` for ``dt``, stream it to Parquet, validate it and publish it.

    The partition ``<data_root>/<vendor>/<dataset>/dt=<dt>`` is replaced
    atomically on success; a batch that fails validation goes to quarantine and
    the task fails. The dataset's asset gets an event (with ``dt``, rows and
    path in its extra) only when a partition was published.

    :param dataset: ``<vendor>/<dataset>``, as declared in ``vendorflow.datasets``.
    :param conn_id: the vendor connection; defaults to the vendor hook's default.
    :param dt: the partition date, ``YYYY-MM-DD`` (templated; the logical date by default).
    :param extract_params: extra values handed to the extractor (templated).
    """

    template_fields = ("dataset", "conn_id", "dt", "extract_params")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        dataset: str,
        conn_id: str | None = None,
        dt: str = "{{ ds }}",
        extract_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("task_id", dataset.partition("/")[2] or dataset)
        kwargs.setdefault("outlets", [asset(dataset)])
        kwargs.setdefault("doc_md", f"Extracts, validates and publishes `{dataset}` for the logical date.")
        super().__init__(**kwargs)
        self.dataset = dataset
        self.conn_id = conn_id
        self.dt = dt
        self.extract_params = extract_params or {}

    def execute(self, context: Any) -> dict[str, Any]:
        from vendorflow import datasets
        from vendorflow.errors import ConfigError
        from vendorflow.pipeline.run import run_dataset
        from vendorflow.vendors import get_hook

        spec = datasets.get(self.dataset)
        try:
            day = date.fromisoformat(str(self.dt).strip())
        except ValueError:
            raise ConfigError(f"dt must be a date as YYYY-MM-DD, not {self.dt!r}") from None
        hook = get_hook(spec.vendor, self.conn_id)
        accept_shrink = (context.get("params") or {}).get("accept_shrink", False)
        if not isinstance(accept_shrink, bool):
            raise ConfigError(f"param accept_shrink must be true or false, not {accept_shrink!r}")
        result = run_dataset(
            spec,
            hook=hook,
            dt=day,
            run_id=context["run_id"],
            try_number=getattr(context.get("ti"), "try_number", None),
            inputs=self.extract_params,
            logger=self.log,
            accept_shrink=accept_shrink,
        )
        context["outlet_events"][asset(self.dataset)].extra = result.as_dict()
        return result.as_dict()
