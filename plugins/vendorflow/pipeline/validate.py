"""Great Expectations validation of a staged batch, with Data Docs for every run.

The suite is built from the declaration when the task runs: the schema's
column list, not-null for non-nullable columns, uniqueness of the key, and the
dataset's own expectations. Each outcome is stored under ``<gx_root>/results``
and rendered into the offline Data Docs site at ``<gx_root>/data_docs/index.html``
(``vendorflow.pipeline.docs``), which lists every dataset and every validation.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from vendorflow.datasets.spec import DatasetSpec, Param
from vendorflow.pipeline.docs import describe_failure

log = logging.getLogger(__name__)

# Great Expectations logs hundreds of INFO lines while it is imported ("Skipping registering function
# ...") and runs: a task log shows ours at INFO and theirs from WARNING, unless VENDORFLOW_GX_LOG_LEVEL
# asks for more. Set before the first import of great_expectations, which happens below, in functions.
logging.getLogger("great_expectations").setLevel(os.environ.get("VENDORFLOW_GX_LOG_LEVEL", "WARNING").upper())


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
    if spec.shrink_limit is not None:
        # The shrink guard: ``min_rows`` is set per run from the published partition's rows.
        expectations.append(gx.expectations.ExpectTableRowCountToBeBetween(min_value=Param("min_rows").gx()))
    for declared in spec.expectations:
        try:
            cls = getattr(gx.expectations, declared.type)
        except AttributeError:
            raise ValueError(f"{spec.key_name}: unknown Great Expectations class {declared.type!r}") from None
        expectations.append(cls(**{k: v.gx() if isinstance(v, Param) else v for k, v in declared.kwargs.items()}))
    return expectations


_CONTEXT: Any = None
# (dataset, columns, suite kind) -> (checkpoint, expectations): built once per process and reused for
# every day a task validates (building a suite and its checkpoint costs as much as running it).
_CHECKPOINTS: dict[tuple[str, tuple[str, ...], str], tuple[tuple[Any, Any], list[Any]]] = {}


def _context() -> Any:
    """The process's one ephemeral Great Expectations context (nothing on disk, no analytics)."""
    global _CONTEXT
    if _CONTEXT is not None:
        return _CONTEXT
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    _CONTEXT = gx.get_context(project_config=config, mode="ephemeral")
    _CONTEXT.data_sources.add_pandas("vendorflow")
    return _CONTEXT


def _checkpoint(spec: DatasetSpec, column_names: list[str], kind: str = "whole") -> tuple[tuple[Any, Any], list[Any]]:
    """The checkpoint that runs ``spec``'s suite (``kind="rows"``: its row-wise part only) on a data frame
    given at run time, and the suite's expectations; built on first use."""
    key = (spec.key_name, tuple(column_names), kind)
    if key in _CHECKPOINTS:
        return _CHECKPOINTS[key]
    import great_expectations as gx

    expectations = suite_expectations(spec, column_names)
    if kind == "rows":
        expectations = [e for e in expectations if type(e).__name__ not in _WHOLE_TABLE]
    context = _context()
    # GX store keys may not contain '/'; one name per (dataset, columns, kind) in this process.
    name = f"{spec.key_name.replace('/', '.')}.{kind}.{len(_CHECKPOINTS)}"
    asset = context.data_sources.get("vendorflow").add_dataframe_asset(name)
    batch = asset.add_batch_definition_whole_dataframe("batch")
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    # Verdicts only: about half the metrics of a SUMMARY. A batch that fails is validated again with
    # SUMMARY (:func:`_run`), for the unexpected counts and samples its report needs.
    checkpoints = tuple(
        context.checkpoints.add(
            gx.Checkpoint(name=f"{name}.{fmt}", validation_definitions=[definition], result_format=fmt)
        )
        for fmt in ("BOOLEAN_ONLY", "SUMMARY")
    )
    _CHECKPOINTS[key] = (checkpoints, list(suite.expectations))
    return _CHECKPOINTS[key]


def _run(checkpoints: tuple[Any, Any], frame: Any, facts: dict[str, Any], run_name: str) -> dict[str, Any]:
    """One validation of ``frame``, as GX's result dictionary: verdicts first, details only when one failed."""
    from great_expectations.core.run_identifier import RunIdentifier

    def once(checkpoint: Any) -> Any:
        run = checkpoint.run(
            batch_parameters={"dataframe": frame},
            expectation_parameters=facts,
            run_id=RunIdentifier(run_name=run_name),
        )
        return next(iter(run.run_results.values()))

    fast, detailed = checkpoints
    result = once(fast)
    if not result.success:
        result = once(detailed)
    return result.to_json_dict()


def validate_table(
    spec: DatasetSpec,
    table: pa.Table,
    *,
    facts: dict[str, Any],
    batch_name: str,
    run_name: str,
    gx_root: Path,
) -> ValidationOutcome:
    """Validate ``table`` against the dataset's suite; store the result and update Data Docs."""
    facts = {"min_rows": 0, **facts}
    checkpoint, expectations = _checkpoint(spec, table.column_names)
    frame = table.to_pandas()
    try:
        described = _run(checkpoint, frame, facts, run_name)
    except Exception as exc:  # a broken suite must not pass silently
        raise RuntimeError(f"{spec.key_name}: Great Expectations could not run the suite: {exc}") from exc
    success = bool(described.get("success"))
    failures = [describe_failure(r) for r in described.get("results", []) if not r.get("success")]
    return _documented(
        spec,
        gx_root,
        run_name=run_name,
        batch_name=batch_name,
        facts=facts,
        expectations=expectations,
        outcome=ValidationOutcome(
            success=success,
            evaluated=len(described.get("results", [])),
            failures=failures,
            result=described,
        ),
    )


def _documented(
    spec: DatasetSpec,
    gx_root: Path,
    *,
    run_name: str,
    batch_name: str,
    facts: dict[str, Any],
    expectations: list[Any],
    outcome: ValidationOutcome,
) -> ValidationOutcome:
    """Store the outcome and render its Data Docs page (``outcome.docs_url`` points at it)."""
    from vendorflow.pipeline import docs

    page = docs.record(
        gx_root,
        dataset=spec.key_name,
        dt=str(facts.get("dt") or batch_name.removeprefix("dt=")),
        run=run_name,
        result=outcome.result,
        suite=[e.configuration.to_json_dict() for e in expectations],
        success=outcome.success,
        evaluated=outcome.evaluated,
        failures=outcome.failures,
        facts=facts,
    )
    outcome.docs_url = page.as_uri()
    return outcome


# --- large batches: validated in chunks, so memory follows the chunk, not the day ----------------

# Rows above which a staged file is validated chunk by chunk (``VENDORFLOW_VALIDATION_CHUNK_ROWS``).
CHUNK_ROWS = int(os.environ.get("VENDORFLOW_VALIDATION_CHUNK_ROWS", "20000"))
# Expectations whose verdict on a table is the conjunction of their verdicts on its parts.
_ROW_WISE = frozenset(
    {
        "ExpectTableColumnsToMatchOrderedList",
        "ExpectTableColumnsToMatchSet",
        "ExpectColumnToExist",
        "ExpectColumnValuesToNotBeNull",
        "ExpectColumnValuesToBeNull",
        "ExpectColumnValuesToBeBetween",
        "ExpectColumnValuesToBeInSet",
        "ExpectColumnValuesToNotBeInSet",
        "ExpectColumnValuesToMatchRegex",
        "ExpectColumnValuesToNotMatchRegex",
        "ExpectColumnValuesToBeOfType",
        "ExpectColumnValuesToBeInTypeList",
        "ExpectColumnValueLengthsToBeBetween",
        "ExpectColumnValueLengthsToEqual",
        "ExpectColumnPairValuesAToBeGreaterThanB",
        "ExpectColumnPairValuesToBeEqual",
    }
)
# Expectations about the whole table that are checked here, over only the columns they need.
_WHOLE_TABLE = frozenset(
    {
        "ExpectColumnValuesToBeUnique",
        "ExpectCompoundColumnsToBeUnique",
        "ExpectTableRowCountToEqual",
        "ExpectTableRowCountToBeBetween",
    }
)


def _chunkable(expectations: list[Any]) -> bool:
    for expectation in expectations:
        name = type(expectation).__name__
        if name not in _ROW_WISE | _WHOLE_TABLE:
            return False  # an aggregate (mean, max, ...) needs the whole table at once
        if name in _ROW_WISE and getattr(expectation, "mostly", 1) not in (None, 1):
            return False  # "mostly" of a part is not "mostly" of the whole
    return True


def validate_parquet(
    spec: DatasetSpec,
    path: Path,
    *,
    facts: dict[str, Any],
    batch_name: str,
    run_name: str,
    gx_root: Path,
    chunk_rows: int | None = None,
) -> ValidationOutcome:
    """Validate a staged Parquet file: whole when small, otherwise ``chunk_rows`` rows at a time.

    In chunks, row-wise expectations run per chunk through Great Expectations
    (one stored result and Data Docs page per chunk) and are merged; key
    uniqueness and row counts are checked over the whole file, reading only the
    key columns. A suite with an aggregate expectation is validated whole.
    """
    import pyarrow.parquet as pq

    facts = {"min_rows": 0, **facts}  # the shrink guard's floor: none unless the run sets one
    chunk_rows = chunk_rows or CHUNK_ROWS
    rows = pq.ParquetFile(path).metadata.num_rows
    names = pq.read_schema(path).names
    if rows <= chunk_rows or not _chunkable(suite_expectations(spec, names)):
        table = pq.read_table(path)
        return validate_table(spec, table, facts=facts, batch_name=batch_name, run_name=run_name, gx_root=gx_root)
    return _validate_in_chunks(
        spec,
        path,
        names,
        rows,
        facts=facts,
        batch_name=batch_name,
        run_name=run_name,
        gx_root=gx_root,
        chunk_rows=chunk_rows,
    )


def _resolve(value: Any, facts: dict[str, Any]) -> Any:
    if isinstance(value, dict) and "$PARAMETER" in value:
        return facts[value["$PARAMETER"]]
    return value


def _whole_table_result(expectation: Any, path: Path, rows: int, facts: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    config = expectation.configuration.to_json_dict()
    kwargs = {k: _resolve(v, facts) for k, v in config["kwargs"].items()}
    config["kwargs"] = kwargs
    name = type(expectation).__name__
    if name.startswith("ExpectTableRowCount"):
        if name == "ExpectTableRowCountToEqual":
            success = rows == kwargs["value"]
        else:
            success = (kwargs.get("min_value") is None or rows >= kwargs["min_value"]) and (
                kwargs.get("max_value") is None or rows <= kwargs["max_value"]
            )
        return {"success": success, "expectation_config": config, "result": {"observed_value": rows}}
    columns = [kwargs["column"]] if name == "ExpectColumnValuesToBeUnique" else list(kwargs["column_list"])
    keys = pq.read_table(path, columns=columns)
    if (
        name == "ExpectColumnValuesToBeUnique"
        or kwargs.get("ignore_row_if", "all_values_are_missing") == "all_values_are_missing"
    ):
        present = None
        for column in columns:
            valid = pc.is_valid(keys[column])
            present = valid if present is None else pc.or_(present, valid)
        keys = keys.filter(present)
    counts = keys.group_by(columns).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))
    unexpected = int(pc.sum(repeated["count_all"]).as_py() or 0)
    sample = repeated.slice(0, 20).select(columns).to_pylist()
    sample = [s[columns[0]] for s in sample] if len(columns) == 1 else sample
    return {
        "success": unexpected == 0,
        "expectation_config": config,
        "result": {"unexpected_count": unexpected, "partial_unexpected_list": sample},
    }


def _validate_in_chunks(
    spec: DatasetSpec,
    path: Path,
    names: list[str],
    rows: int,
    *,
    facts: dict[str, Any],
    batch_name: str,
    run_name: str,
    gx_root: Path,
    chunk_rows: int,
) -> ValidationOutcome:
    import pyarrow.parquet as pq

    expectations = suite_expectations(spec, names)
    checkpoint, row_wise = _checkpoint(spec, names, "rows")  # the row-wise part, run by GX chunk by chunk
    whole = [e for e in expectations if type(e).__name__ in _WHOLE_TABLE]
    chunks: list[dict[str, Any]] = []
    merged: dict[str, dict[str, Any]] = {}  # failing expectation -> its merged result
    for number, record_batch in enumerate(pq.ParquetFile(path).iter_batches(batch_size=chunk_rows), start=1):
        frame = pa.Table.from_batches([record_batch]).to_pandas()
        try:
            described = _run(checkpoint, frame, facts, f"{run_name}-part{number}")
        except Exception as exc:
            raise RuntimeError(f"{spec.key_name}: Great Expectations could not run the suite: {exc}") from exc
        del frame
        chunks.append({"part": number, "success": described.get("success"), "statistics": described.get("statistics")})
        for result in described.get("results", []):
            if result.get("success"):
                continue
            config = result.get("expectation_config") or {}
            key = repr((config.get("type"), sorted((config.get("kwargs") or {}).items(), key=lambda kv: kv[0])))
            into = merged.setdefault(
                key,
                {
                    "success": False,
                    "expectation_config": config,
                    "result": {},
                    "exception_info": result.get("exception_info"),
                },
            )
            detail, total = result.get("result") or {}, into["result"]
            if detail.get("unexpected_count") is not None:
                total["unexpected_count"] = total.get("unexpected_count", 0) + detail["unexpected_count"]
                total["partial_unexpected_list"] = (
                    total.get("partial_unexpected_list", []) + list(detail.get("partial_unexpected_list") or [])
                )[:20]
            elif "observed_value" in detail:
                total.setdefault("observed_value", detail["observed_value"])
    whole_results = [_whole_table_result(e, path, rows, facts) for e in whole]
    failing = list(merged.values()) + [r for r in whole_results if not r["success"]]
    return _documented(
        spec,
        gx_root,
        run_name=run_name,
        batch_name=batch_name,
        facts=facts,
        expectations=expectations,
        outcome=ValidationOutcome(
            success=not failing,
            evaluated=len(row_wise) + len(whole),
            failures=[describe_failure(r) for r in failing],
            result={
                "chunked": {"rows": rows, "chunk_rows": chunk_rows, "parts": chunks},
                "results": failing + [r for r in whole_results if r["success"]],
                "success": not failing,
            },
        ),
    )
