"""Data Docs: self-contained HTML pages of every validation, readable offline.

Each validation is stored as JSON under ``<gx_root>/results/<name>/dt=<day>/<run>.json``
(``name`` is the dataset key with ``/`` as ``.``), with the suite it ran, and its
one-line summary beside it (``<run>.summary``), which is all the listing pages read. The site under
``<gx_root>/data_docs/`` is rendered from those files:

- ``index.html``: every dataset ever validated, its suite and its latest validation;
- ``datasets/<name>.html``: every validation of one dataset, newest first;
- ``suites/<name>.html``: the dataset's expectations as last run;
- ``validations/<name>/dt=<day>/<run>.html``: one validation, expectation by expectation.

Pages carry their own CSS, no script and no link off the site, so they render
without internet, from a file, from a copy, or through the vendorflow page of
the Airflow UI; every link is relative. Great Expectations evaluates the
expectations; this module only renders what it found (its own site builder
loads its scripts from CDNs and lists only the suites of its own context).
A task renders its own validation page and rebuilds the three summary pages
that list it, under a lock, so concurrent tasks never lose each other's entry.
"""

from __future__ import annotations

import contextlib
import fcntl
import html
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SITE = "data_docs"
RESULTS = "results"
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#017cee;color:#fff;padding:12px 24px}header a{color:#fff}
main{padding:16px 24px;max-width:1200px}h1{font-size:20px;margin:0}h2{font-size:16px;margin:24px 0 8px}
table{border-collapse:collapse;background:#fff;width:100%;margin-bottom:16px}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}th{background:#eef1f4}
code,pre{font:12px ui-monospace,monospace;white-space:pre-wrap;overflow-wrap:anywhere}
.ok{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}nav a{margin-right:12px}
.muted{color:#656d76}
"""


def site_name(dataset: str) -> str:
    """A dataset key as one path segment (``footprints/leads`` -> ``footprints.leads``)."""
    return dataset.replace("/", ".")


def _segment(text: str) -> str:
    return _UNSAFE.sub("_", text)[:120] or "_"


@dataclass(frozen=True)
class Validation:
    """One stored validation: what the pages need without the whole result."""

    dataset: str
    dt: str
    run: str
    validated_at: str
    success: bool
    evaluated: int
    failures: list[str]

    @property
    def page(self) -> str:
        """The validation page, relative to the site's root."""
        return f"validations/{site_name(self.dataset)}/dt={self.dt}/{_segment(self.run)}.html"


def _escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _write(path: Path, text: str) -> None:
    """Atomically: a reader (or a link crawler) never sees half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".html")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


@contextlib.contextmanager
def _site_lock(gx_root: Path) -> Iterator[None]:
    gx_root.mkdir(parents=True, exist_ok=True)
    with open(gx_root / ".data_docs.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _page(title: str, depth: int, body: str) -> str:
    up = "../" * depth
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_escape(title)} · vendorflow Data Docs</title><style>{CSS}</style></head><body>"
        f'<header><h1>{_escape(title)}</h1><nav><a href="{up}index.html">All datasets</a></nav></header>'
        f"<main>{body}</main></body></html>\n"
    )


def _status(success: bool, *, batch: bool = True) -> str:
    """A validation's verdict (``batch``: a failed one quarantined its batch) or one expectation's."""
    if success:
        return '<span class="ok">passed</span>'
    return '<span class="fail">failed, batch quarantined</span>' if batch else '<span class="fail">failed</span>'


# --- storing ----------------------------------------------------------------------------------------


def record(
    gx_root: Path,
    *,
    dataset: str,
    dt: str,
    run: str,
    result: Mapping[str, Any],
    suite: list[Mapping[str, Any]],
    success: bool,
    evaluated: int,
    failures: list[str],
    facts: Mapping[str, Any],
) -> Path:
    """Store one validation and render its page and the pages that list it; returns its page."""
    name = site_name(dataset)
    stored = gx_root / RESULTS / name / f"dt={dt}" / f"{_segment(run)}.json"
    document = {
        "dataset": dataset,
        "dt": dt,
        "run": run,
        "validated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "success": success,
        "evaluated": evaluated,
        "failures": failures,
        "parameters": dict(facts),
        "suite": list(suite),
        "result": dict(result),
    }
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_text(json.dumps(document, default=str, indent=1))
    validation = _summary(document)
    # The listing pages read only this small summary, so rebuilding them stays cheap as results pile up.
    stored.with_suffix(".summary").write_text(json.dumps(asdict(validation), default=str))
    site = gx_root / SITE
    _write(site / validation.page, _validation_page(validation, document))
    if _pending is not None:  # inside deferred(): the listings are rebuilt once, when it ends
        _pending[(gx_root, dataset)] = (document["suite"], validation)
    else:
        _rebuild(gx_root, dataset, document["suite"], validation)
    return site / validation.page


def _rebuild(gx_root: Path, dataset: str, suite: list[Mapping[str, Any]], validation: Validation) -> None:
    """The pages that list validations: the dataset's suite and validations, and the index (under the site's
    lock, so concurrent tasks never lose each other's entry)."""
    name, site = site_name(dataset), gx_root / SITE
    with _site_lock(gx_root):
        _write(site / "suites" / f"{name}.html", _suite_page(dataset, suite, validation))
        _write(site / "datasets" / f"{name}.html", _dataset_page(dataset, validations(gx_root, dataset)))
        _write(site / "index.html", _index_page(gx_root))


_pending: dict[tuple[Path, str], tuple[list[Mapping[str, Any]], Validation]] | None = None


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Validations recorded inside are listed once, at the end: a task that validates many days (a lookback,
    a republish) rebuilds the listing pages once, not once a day. Each validation's own page is written at once."""
    global _pending
    if _pending is not None:  # nested: the outer one rebuilds
        yield
        return
    _pending = {}
    try:
        yield
    finally:
        pending, _pending = _pending, None
        for (gx_root, dataset), (suite, validation) in pending.items():
            _rebuild(gx_root, dataset, suite, validation)


def _read(folder: Path) -> list[Validation]:
    found = []
    for path in folder.glob("*.summary"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            found.append(_summary(json.loads(path.read_text())))
    return found


def _summary(document: Mapping[str, Any]) -> Validation:
    return Validation(
        dataset=str(document["dataset"]),
        dt=str(document["dt"]),
        run=str(document["run"]),
        validated_at=str(document.get("validated_at") or ""),
        success=bool(document.get("success")),
        evaluated=int(document.get("evaluated") or 0),
        failures=list(document.get("failures") or []),
    )


def validations(gx_root: Path, dataset: str) -> list[Validation]:
    """Every stored validation of ``dataset``, newest first."""
    found = []
    for folder in (gx_root / RESULTS / site_name(dataset)).glob("dt=*"):
        found.extend(_read(folder))
    return sorted(found, key=lambda v: (v.validated_at, v.dt), reverse=True)


def latest(gx_root: Path, dataset: str) -> Validation | None:
    """The most recent validation of ``dataset`` (its newest day first, then its newest run)."""
    folders = sorted((gx_root / RESULTS / site_name(dataset)).glob("dt=*"), reverse=True)
    for folder in folders:
        runs = _read(folder)
        if runs:
            return max(runs, key=lambda v: v.validated_at)
    return None


def datasets(gx_root: Path) -> list[str]:
    """Every dataset with a stored validation."""
    root = gx_root / RESULTS
    if not root.is_dir():
        return []
    names = []
    for folder in sorted(root.iterdir()):
        for stored in folder.glob("dt=*/*.summary"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                names.append(str(json.loads(stored.read_text())["dataset"]))
                break
    return names


# --- pages ------------------------------------------------------------------------------------------


def _index_page(gx_root: Path) -> str:
    rows = []
    for dataset in datasets(gx_root):
        newest = latest(gx_root, dataset)
        if newest is None:
            continue
        name = site_name(dataset)
        rows.append(
            f'<tr><td><a href="datasets/{name}.html">{_escape(dataset)}</a></td>'
            f'<td><a href="suites/{name}.html">suite</a></td>'
            f'<td><a href="{newest.page}">dt={_escape(newest.dt)}</a></td>'
            f"<td>{_status(newest.success)}</td><td>{newest.evaluated - len(newest.failures)}/{newest.evaluated}</td>"
            f'<td class="muted">{_escape(newest.validated_at)}</td></tr>'
        )
    body = (
        "<p>Every dataset's expectation suite and its most recent validation. A failed validation "
        "quarantines its batch: the published partition stays as it was.</p>"
        "<table><tr><th>Dataset (data asset)</th><th>Suite</th><th>Latest batch</th><th>Result</th>"
        "<th>Expectations passed</th><th>Validated at (UTC)</th></tr>" + "".join(rows) + "</table>"
    )
    return _page("vendorflow Data Docs", 0, body)


def _dataset_page(dataset: str, found: list[Validation]) -> str:
    name = site_name(dataset)
    rows = "".join(
        f'<tr><td><a href="../{v.page}">dt={_escape(v.dt)}</a></td><td>{_status(v.success)}</td>'
        f"<td>{v.evaluated - len(v.failures)}/{v.evaluated}</td><td><code>{_escape(v.run)}</code></td>"
        f'<td class="muted">{_escape(v.validated_at)}</td></tr>'
        for v in found
    )
    body = (
        f"<p>Data asset <b>{_escape(dataset)}</b>: {len(found)} validation(s). "
        f'<a href="../suites/{name}.html">Its expectation suite</a>.</p>'
        "<table><tr><th>Batch</th><th>Result</th><th>Expectations passed</th><th>Run</th><th>Validated at "
        "(UTC)</th></tr>" + rows + "</table>"
    )
    return _page(f"{dataset}: validations", 1, body)


def _kwargs(config: Mapping[str, Any]) -> str:
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
    return ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in kwargs.items())


def _suite_page(dataset: str, suite: list[Mapping[str, Any]], newest: Validation) -> str:
    rows = "".join(
        f"<tr><td>{i}</td><td><code>{_escape(e.get('type'))}</code></td><td><code>{_escape(_kwargs(e))}</code></td></tr>"
        for i, e in enumerate(suite, start=1)
    )
    body = (
        f"<p>The expectations every batch of data asset <b>{_escape(dataset)}</b> must meet, built from its "
        f'declaration, as run last on <a href="../{newest.page}">dt={_escape(newest.dt)}</a>. '
        f"<code>$PARAMETER</code> values are set per run (shown on each validation page).</p>"
        "<table><tr><th>#</th><th>Expectation</th><th>Arguments</th></tr>" + rows + "</table>"
    )
    return _page(f"{dataset}: expectation suite", 1, body)


def describe_found(result: Mapping[str, Any]) -> str:
    """What one expectation result found: ``raised ...``, ``N unexpected values, e.g. [...]``,
    ``observed ...``, or nothing."""
    detail = result.get("result") or {}
    exception = (result.get("exception_info") or {}).get("exception_message")
    if exception:
        return f"raised {exception}"
    if detail.get("unexpected_count") is not None:
        sample = detail.get("partial_unexpected_list") or []
        return f"{detail['unexpected_count']} unexpected values" + (f", e.g. {sample[:5]!r}" if sample else "")
    if "observed_value" in detail:
        return f"observed {detail['observed_value']!r}"
    return ""


def describe_failure(result: Mapping[str, Any]) -> str:
    """One failed expectation as a line of a task log or an error: ``type(arguments): what it found``."""
    config = result.get("expectation_config") or {}
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
    text = f"{config.get('type')}({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
    found = describe_found(result)
    return f"{text}: {found}" if found else text


def _validation_page(validation: Validation, document: Mapping[str, Any]) -> str:
    name = site_name(validation.dataset)
    depth = 3  # validations/<name>/dt=<day>/
    up = "../" * depth
    results = list((document.get("result") or {}).get("results") or [])
    results.sort(key=lambda r: bool(r.get("success")))  # failures first
    rows = "".join(
        f"<tr><td>{_status(bool(r.get('success')), batch=False)}</td>"
        f"<td><code>{_escape((r.get('expectation_config') or {}).get('type'))}</code></td>"
        f"<td><code>{_escape(_kwargs(r.get('expectation_config') or {}))}</code></td>"
        f"<td><code>{_escape(describe_found(r))}</code></td></tr>"
        for r in results
    )
    chunked = (document.get("result") or {}).get("chunked")
    note = ""
    if chunked:
        note = (
            f'<p class="muted">Validated in {len(chunked.get("parts") or [])} chunk(s) of '
            f"{chunked.get('chunk_rows'):,} rows; "
            "only failing row-wise expectations and the whole-table checks are listed.</p>"
        )
    parameters = json.dumps(document.get("parameters") or {}, indent=1, default=str)
    body = (
        "<table><tr><th>Data asset</th><td><a "
        f'href="{up}datasets/{name}.html">{_escape(validation.dataset)}</a></td></tr>'
        f"<tr><th>Batch</th><td>dt={_escape(validation.dt)}</td></tr>"
        f"<tr><th>Run</th><td><code>{_escape(validation.run)}</code></td></tr>"
        f"<tr><th>Validated at (UTC)</th><td>{_escape(validation.validated_at)}</td></tr>"
        f"<tr><th>Result</th><td>{_status(validation.success)}: "
        f"{validation.evaluated - len(validation.failures)} of {validation.evaluated} expectations passed</td></tr>"
        f'<tr><th>Suite</th><td><a href="{up}suites/{name}.html">{_escape(validation.dataset)} '
        "suite</a></td></tr></table>"
        f"{note}<h2>Expectations</h2><table><tr><th>Result</th><th>Expectation</th><th>Arguments</th><th>Found</th></tr>"
        f"{rows}</table><h2>Run parameters</h2><pre>{_escape(parameters)}</pre>"
    )
    return _page(f"{validation.dataset} dt={validation.dt}", depth, body)
