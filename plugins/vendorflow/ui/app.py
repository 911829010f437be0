"""The vendorflow page of the Airflow UI: a FastAPI app the API server mounts at ``/vendorflow``.

``GET /vendorflow/`` is one server-rendered page (no script, no CDN): every
declared dataset with its newest partitions, rows per day over the last 30
days, its latest validation and a link to its Data Docs page, quarantined
batches with their reasons, freshness against the daily schedule, and the
actions (opt-outs, uploads, the Recomendo training window). ``/vendorflow/docs/``
serves the Data Docs site; ``/vendorflow/status.json`` is the same content as
JSON. Everything is read from the data root and the ledger, never from a
vendor, and every route requires a user Airflow's auth manager lets read assets.
"""

from __future__ import annotations

import html
import logging
import os
from dataclasses import asdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

log = logging.getLogger(__name__)

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1f2328;background:#fff}
main{padding:12px 20px}h1{font-size:20px;margin:4px 0 2px}h2{font-size:16px;margin:22px 0 6px}
table{border-collapse:collapse;width:100%;margin-bottom:8px}th,td{border-bottom:1px solid #d0d7de;padding:5px 8px;
text-align:left;vertical-align:middle}th{background:#f6f8fa;font-weight:600}code{font:12px ui-monospace,monospace}
.ok{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}.late{background:#cf222e;color:#fff;
border-radius:3px;padding:0 5px;font-size:12px}.muted{color:#656d76}svg rect{fill:#017cee}svg rect.zero{fill:#d0d7de}
.num{text-align:right;font-variant-numeric:tabular-nums}.nowrap{white-space:nowrap}
"""


ICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2">'
    '<rect x="3" y="12" width="4" height="8"/><rect x="10" y="7" width="4" height="13"/><rect x="17" y="3" '
    'width="4" height="17"/></svg>'
)


def _escape(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _variable(key: str, default: str | None = None) -> str | None:
    """An Airflow Variable as the API server sees it (metadata database, then ``AIRFLOW_VAR_*``)."""
    try:
        from airflow.models.variable import Variable

        value = Variable.get(key, default_var=None)
        if value is not None:
            return str(value)
    except Exception:  # outside an Airflow API server (a unit test)
        pass
    return os.environ.get(f"AIRFLOW_VAR_{key.upper()}", default)


def locations() -> tuple[str, Path]:
    """The data root and the local folder of validation results and Data Docs (as the tasks use them)."""
    from vendorflow import settings
    from vendorflow.pipeline.run import gx_root
    from vendorflow.pipeline.storage import Lake

    data_root = _variable("data_root") or settings.data_root()
    return data_root, gx_root(Lake(data_root), variable=_variable)


def chart(rows_by_day: dict[str, int], today: date, days: int = 30) -> str:
    """Rows per day as a small inline SVG bar chart (a day with no partition is an empty slot)."""
    width, height, bar = days * 6, 28, 5
    peak = max(rows_by_day.values(), default=0) or 1
    bars = []
    for i in range(days):
        day = (today - timedelta(days=days - 1 - i)).isoformat()
        rows = rows_by_day.get(day)
        if rows is None:
            continue
        h = max(2, round(rows / peak * (height - 2)))
        cls = ' class="zero"' if rows == 0 else ""
        bars.append(
            f'<rect x="{i * 6}" y="{height - h}" width="{bar}" height="{h}"{cls}><title>{day}: {rows:,} '
            "rows</title></rect>"
        )
    label = f"rows per day, last {days} days: {len(rows_by_day)} day(s) published"
    return (
        f'<svg class="chart" role="img" aria-label="{label}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">{"".join(bars)}</svg>'
    )


def render(statuses: list[Any], found: Any, *, data_root: str, now: datetime) -> str:
    today = now.date()
    rows = []
    for s in statuses:
        if s.docs_page:
            verdict = "passed" if s.validation_passed else "failed"
            cls = "ok" if s.validation_passed else "fail"
            validation = f'<a class="{cls}" href="docs/{_escape(s.docs_page)}">{verdict}</a>'
            if s.validation:  # "11/11 expectations passed" of the newest partition
                validation += (
                    f' <span class="muted" title="{_escape(s.validation)}">{_escape(s.validation.split()[0])}</span>'
                )
        else:
            validation = '<span class="muted">not validated yet</span>'
        if s.newest is None:
            fresh = '<span class="late">no data</span>'
        else:
            age = {0: "today", 1: "1 day old"}.get(s.age_days or 0, f"{s.age_days} days old")
            fresh = age + (
                f' <span class="late" title="expected dt={_escape(s.expected)}">late</span>' if s.late else ""
            )
        newest = (
            f'<span class="nowrap">dt={_escape(s.newest)}</span><br><span class="muted">{s.newest_rows:,} rows</span>'
            if s.newest and s.newest_rows is not None
            else "—"
        )
        quarantine = (
            f'<a class="fail" href="#quarantine-{_escape(s.dataset)}">{len(s.quarantined)}</a>'
            if s.quarantined
            else "0"
        )
        kind = ' <span class="muted">snapshot</span>' if s.snapshot else ""
        rows.append(
            f'<tr data-dataset="{_escape(s.dataset)}"><td><b>{_escape(s.dataset)}</b>{kind}<br>'
            f'<span class="muted">{_escape(s.description)}</span></td><td>{newest}</td>'
            f"<td>{chart(s.rows_by_day, today)}</td><td>{validation}</td><td>{fresh}</td><td "
            f'class="num">{quarantine}</td></tr>'
        )
    quarantined = []
    for s in statuses:
        for q in s.quarantined:
            reasons = "".join(f"<li><code>{_escape(r)}</code></li>" for r in q.reasons)
            quarantined.append(
                f'<tr id="quarantine-{_escape(s.dataset)}"><td>{_escape(s.dataset)}</td><td>dt={_escape(q.dt)}</td>'
                f'<td><code>{_escape(q.run)}</code><br><span class="muted">{_escape(q.folder)}</span></td>'
                f"<td><ul>{reasons}</ul></td></tr>"
            )
    body = [
        f'<main><h1>vendorflow</h1><p class="muted">Data root <code>{_escape(data_root)}</code> · '
        f"as of {now.isoformat(timespec='seconds')} · a dataset is late when it lacks a day that ended more than "
        f'the grace period ago · <a href="docs/index.html">all Data Docs</a> · <a href="status.json">JSON</a></p>',
        '<h2>Datasets</h2><table id="datasets"><tr><th>Dataset</th><th>Newest partition</th><th>Rows per day (30 '
        "days)</th>"
        "<th>Latest validation</th><th>Freshness</th><th>Quarantined</th></tr>" + "".join(rows) + "</table>",
        "<h2>Quarantined batches</h2>"
        + (
            "<table><tr><th>Dataset</th><th>Day</th><th>Run and folder</th><th>Failed expectations</th></tr>"
            + "".join(quarantined)
            + "</table>"
            if quarantined
            else '<p class="muted">None.</p>'
        ),
        _actions(found),
        "</main>",
    ]
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>vendorflow</title><style>{CSS}</style>'
        f"</head><body>{''.join(body)}</body></html>"
    )


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return '<p class="muted">None.</p>'
    head = "".join(f"<th>{_escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _actions(found: Any) -> str:
    parts = ["<h2>Actions</h2>"]
    parts.extend(f'<p class="muted">{_escape(n)}</p>' for n in found.notes)
    counts = ", ".join(f"{n:,} {status}" for status, n in found.optouts.items()) or "none yet"
    parts.append(f"<h3>Algonomy opt-outs</h3><p>Users: {_escape(counts)}.</p>")
    parts.append(
        _table(
            ["User", "Status", "Message", "Updated"],
            [[o["user"], o["status"], o["message"], o["updated_at"]] for o in found.optouts_open],
        )
    )
    parts.append("<h3>Allyy uploads</h3>")
    parts.append(
        _table(
            ["Upload", "Status", "Message", "Updated"],
            [[u["upload"], u["status"], u["message"], u["updated_at"]] for u in found.uploads],
        )
    )
    parts.append("<h3>Recomendo training window</h3>")
    parts.append(
        _table(
            ["Account", "Last call", "Next call allowed", "Pending training due", "Trained on data until"],
            [
                [
                    t["account"],
                    t["last_call_at"] or "never",
                    t["next_allowed_at"],
                    t["pending_due_at"] or "—",
                    t["trained_until"] or "—",
                ]
                for t in found.training
            ],
        )
    )
    return "".join(parts)


def _authorized() -> Any:
    """Airflow's own check: a signed-in user allowed to read assets (the JWT cookie the UI sets)."""
    from airflow.api_fastapi.core_api.security import requires_access_asset

    return Depends(requires_access_asset("GET"))


def create_app(*, authenticate: bool = True) -> FastAPI:
    dependencies = [_authorized()] if authenticate else []
    app = FastAPI(title="vendorflow", openapi_url=None, docs_url=None, redoc_url=None, dependencies=dependencies)

    @app.exception_handler(HTTPException)
    async def sign_in_first(request: Request, exc: HTTPException) -> Any:
        if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
            from airflow.api_fastapi.app import get_auth_manager

            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    def gather() -> tuple[str, Any, Any, datetime]:
        from vendorflow.ui.status import actions, dataset_statuses

        data_root, gx_root = locations()
        now = datetime.now(timezone.utc)
        return data_root, dataset_statuses(data_root, gx_root, now=now), actions(), now

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        data_root, statuses, found, now = gather()
        return HTMLResponse(render(statuses, found, data_root=data_root, now=now))

    @app.get("/status.json")
    def status_json() -> JSONResponse:
        data_root, statuses, found, now = gather()
        datasets = [{**asdict(s), "late": s.late, "age_days": s.age_days} for s in statuses]
        return JSONResponse(
            {"data_root": data_root, "as_of": now.isoformat(), "datasets": datasets, "actions": asdict(found)}
        )

    @app.get("/icon.svg")
    def icon() -> Response:
        return Response(ICON, media_type="image/svg+xml")

    @app.get("/docs/{path:path}")
    def data_docs(path: str) -> FileResponse:
        site = (locations()[1] / "data_docs").resolve()
        target = (site / (path or "index.html")).resolve()
        if site not in target.parents or not target.is_file():
            raise HTTPException(404, f"no Data Docs page {path!r} under {site}")
        return FileResponse(target)

    return app
