"""Great Expectations validation of a staged batch, with Data Docs for every run.

The suite is built from the declaration when the task runs: the schema's
column list, not-null for non-nullable columns, uniqueness of the key, and the
dataset's own expectations. Results are stored as JSON under ``<gx_root>/validations``
and rendered into one Data Docs site at ``<gx_root>/data_docs/index.html``
that lists every validation ever run.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from vendorflow.datasets.spec import DatasetSpec

log = logging.getLogger(__name__)


@dataclass
class ValidationOutcome:
    success: bool
    evaluated: int
    failures: list[str]
    result: dict[str, Any] = field(repr=False)
    docs_url: str | None = None

    @property
    def passed(self) -> int:
        return self.evaluated - len(self.failures)

    def summary(self) -> str:
        return f"{self.passed}/{self.evaluated} expectations passed"


def suite_expectations(spec: DatasetSpec, column_names: list[str]) -> list[Any]:
    import great_expectations as gx

    expectations: list[Any] = [gx.expectations.ExpectTableColumnsToMatchOrderedList(column_list=column_names)]
    for column in spec.columns:
        if not column.nullable:
            expectations.append(gx.expectations.ExpectColumnValuesToNotBeNull(column=column.name))
    if len(spec.key) == 1:
        expectations.append(gx.expectations.ExpectColumnValuesToBeUnique(column=spec.key[0]))
    elif spec.key:
        expectations.append(gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=list(spec.key)))
    for declared in spec.expectations:
        try:
            cls = getattr(gx.expectations, declared.type)
        except AttributeError:
            raise ValueError(f"{spec.key_name}: unknown Great Expectations class {declared.type!r}") from None
        expectations.append(cls(**declared.kwargs))
    return expectations


def _describe_failure(result: dict[str, Any]) -> str:
    config = result.get("expectation_config") or {}
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k not in ("batch_id",)}
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    text = f"{config.get('type')}({args})"
    detail = result.get("result") or {}
    exception = (result.get("exception_info") or {}).get("exception_message")
    if exception:
        return f"{text}: raised {exception}"
    if "unexpected_count" in detail and detail.get("unexpected_count") is not None:
        sample = detail.get("partial_unexpected_list") or []
        text += f": {detail['unexpected_count']} unexpected values"
        if sample:
            text += f", e.g. {sample[:5]!r}"
    elif "observed_value" in detail:
        text += f": observed {detail['observed_value']!r}"
    return text


def _context(gx_root: Path) -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    config.stores["validation_results_store"] = {
        "class_name": "ValidationResultsStore",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(gx_root / "validations")},
    }
    config.data_docs_sites = {
        "vendorflow": {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(gx_root / "data_docs")},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    }
    return gx.get_context(project_config=config, mode="ephemeral")


def validate_table(
    spec: DatasetSpec,
    table: pa.Table,
    *,
    parameters: dict[str, Any],
    batch_name: str,
    run_name: str,
    gx_root: Path,
) -> ValidationOutcome:
    """Validate ``table`` against the dataset's suite; store the result and update Data Docs."""
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    gx_root.mkdir(parents=True, exist_ok=True)
    context = _context(gx_root)
    name = spec.key_name.replace("/", ".")  # GX store keys may not contain '/'
    asset = context.data_sources.add_pandas("vendorflow").add_dataframe_asset(name)
    batch = asset.add_batch_definition_whole_dataframe(batch_name)
    suite = context.suites.add(
        gx.ExpectationSuite(name=name, expectations=suite_expectations(spec, table.column_names))
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{name} {batch_name}", data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=name,
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
            result_format="SUMMARY",
        )
    )
    frame = table.to_pandas()
    try:
        run = checkpoint.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=parameters,
            run_id=RunIdentifier(run_name=run_name),
        )
    except Exception as exc:  # a broken suite must not pass silently
        raise RuntimeError(f"{spec.key_name}: Great Expectations could not run the suite: {exc}") from exc
    result = next(iter(run.run_results.values()))
    described = result.to_json_dict()
    failures = [_describe_failure(r) for r in described.get("results", []) if not r.get("success")]
    docs_index = gx_root / "data_docs" / "index.html"
    return ValidationOutcome(
        success=bool(result.success),
        evaluated=len(described.get("results", [])),
        failures=failures,
        result=described,
        docs_url=docs_index.as_uri() if docs_index.exists() else None,
    )
