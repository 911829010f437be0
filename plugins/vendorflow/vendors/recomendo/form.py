"""The ``recomendo`` connection form."""

from __future__ import annotations

from typing import Any

from vendorflow.forms import COMMON_FIELDS, number, text

FORM: dict[str, Any] = {
    "connection-type": "recomendo",
    "hook-class-name": "vendorflow.vendors.recomendo.hook.RecomendoHook",
    "hook-name": "Recomendo",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port"],
        "relabeling": {
            "host": "One base URL for all four services (optional)",
            "login": "Client ID",
            "password": "Client secret",
        },
        "placeholders": {
            "host": "leave empty for the production services",
            "login": "61b9a60ee5ef4efdb7048bc444faa196",
        },
    },
    "conn-fields": {
        "auth_url": text("Auth URL", "POST /v1/auth is appended.", default="https://auth.recomendo.ai"),
        "client_url": text(
            "Client URL", "/v1/usage and /v1/train are appended.", default="https://client.recomendo.ai"
        ),
        "events_url": text("Events URL", "/v1/events.json is appended.", default="https://events.recomendo.ai"),
        "predictions_url": text(
            "Predictions URL", "/v1/queries.json is appended.", default="https://predictions.recomendo.ai"
        ),
        "requests_per_second": number(
            "Requests per second",
            "Budget per client id, shared by every task and worker (Recomendo documents none).",
            default=20,
            minimum=0,
        ),
        "token_leeway_seconds": number(
            "Token leeway (s)", "A token is replaced this long before it expires.", default=100, minimum=0
        ),
        "training_interval_seconds": number(
            "Training interval (s)",
            "Recomendo's limit: at most one /v1/train per this many seconds.",
            default=1800,
            minimum=0,
        ),
        "training_margin_seconds": number(
            "Training margin (s)",
            "Added to the interval, against clock differences with the vendor.",
            default=5,
            minimum=0,
        ),
        "quota_warning_share": number(
            "Quota warning share",
            "Warn when the month's remaining quota falls under this share (0-1).",
            default=0.1,
            minimum=0,
        ),
        "usage_poll_seconds": number(
            "Month-end poll (s)",
            "recomendo_usage_month_end reads the usage report this often until the month rolls over.",
            default=5,
            minimum=0,
        ),
        "month_end_wait_seconds": number(
            "Month-end wait (s)",
            "How long recomendo_usage_month_end waits for the rollover before keeping its last read.",
            default=900,
            minimum=0,
        ),
        **COMMON_FIELDS,
        "concurrency": number(
            "Concurrency",
            "Events in flight at once (the budget, not this, sets the pace).",
            default=8,
            minimum=1,
            integer=True,
        ),
    },
}
