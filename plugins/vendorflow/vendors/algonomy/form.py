"""The ``algonomy`` connection form."""

from __future__ import annotations

from typing import Any

from vendorflow.forms import COMMON_FIELDS, number, text

FORM: dict[str, Any] = {
    "connection-type": "algonomy",
    "hook-class-name": "vendorflow.vendors.algonomy.hook.AlgonomyHook",
    "hook-name": "Algonomy",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port"],
        "relabeling": {"host": "Gateway URL", "login": "client_id", "password": "client_secret"},
        "placeholders": {
            "host": "https://gateway.richrelevance.com (QA: https://qa-gateway.richrelevance.com)",
            "login": "the client_id Algonomy support issued for this site",
            "password": "the matching client_secret",
        },
    },
    "conn-fields": {
        "api_key": text("API key", "The site's apiKey, part of every opt-out URL (required)."),
        "requests_per_second": number(
            "Requests per second",
            "Algonomy accepts up to 100 user id updates per second; one budget shared by every task and worker.",
            default=100,
            minimum=0,
        ),
        "token_request": text(
            "Token request",
            "Send the client credentials in the query string (as documented) or as a form body.",
            default="query",
            choices=["query", "form"],
        ),
        "token_leeway_seconds": number(
            "Token leeway (s)",
            "Fetch a new token this many seconds before the current one expires.",
            default=60,
            minimum=0,
        ),
        **COMMON_FIELDS,
        "concurrency": number(
            "Concurrency",
            "Opt-outs in flight at once (the budget, not this, sets the pace).",
            default=16,
            minimum=1,
            integer=True,
        ),
    },
}
