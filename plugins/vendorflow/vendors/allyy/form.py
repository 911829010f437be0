"""The ``allyy`` connection form."""

from __future__ import annotations

from typing import Any

from vendorflow.forms import COMMON_FIELDS, number, text

FORM: dict[str, Any] = {
    "connection-type": "allyy",
    "hook-class-name": "vendorflow.vendors.allyy.hook.AllyyHook",
    "hook-name": "Allyy",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port"],
        "relabeling": {"host": "Base URL", "login": "Client ID", "password": "Client secret"},
        "placeholders": {
            "host": "https://app.allyy.io",
            "login": "OAuth2 client id",
            "password": "OAuth2 client secret",
        },
    },
    "conn-fields": {
        "customer_id": text("Customer ID", "Your Allyy customer id (a UUID); every API path contains it."),
        "token_url": text(
            "Token URL", "OAuth2 token endpoint; empty means the host + /api/authentication/connect/token."
        ),
        "scope": text("Scope", "OAuth2 scope asked for with the client credentials.", default="allyy_api"),
        "requests_per_second": number(
            "Requests per second",
            "Allyy publishes no limit; this budget is shared by every task and worker.",
            default=10,
            minimum=0,
        ),
        "page_size": number(
            "Page size", "take= of the take/skip listings (models, uploads).", default=100, minimum=1, integer=True
        ),
        "token_leeway_seconds": number(
            "Token leeway (s)", "A token is renewed this many seconds before it expires.", default=60, minimum=0
        ),
        **COMMON_FIELDS,
    },
}
