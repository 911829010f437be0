"""Registers the vendor connection types with Airflow (the ``apache_airflow_provider`` entry point).

With the project installed (``pip install -e .``, which ``make`` does), the
Airflow UI offers each vendor as a connection type with its own form. The form
is declared here as data (Airflow 3.3's ``ui-field-behaviour`` and
``conn-fields``), so the UI builds it without importing any hook; each
``conn-fields`` entry is a typed input stored in the connection's extra JSON.
"""

from __future__ import annotations

from typing import Any

from vendorflow import __version__


def number(label: str, description: str, *, default: float | None = None, minimum: float | None = None,
           integer: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["integer" if integer else "number", "null"]}
    if default is not None:
        schema["default"] = default
    if minimum is not None:
        schema["minimum"] = minimum
    return {"label": label, "description": description, "schema": schema}


def text(label: str, description: str, *, default: str | None = None, secret: bool = False,
         choices: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if default is not None:
        schema["default"] = default
    if secret:
        schema["format"] = "password"
    if choices:
        schema["enum"] = choices
    return {"label": label, "description": description, "schema": schema}


# Extras every vendor connection understands (vendorflow.hooks.base.VendorHook reads them).
COMMON_FIELDS: dict[str, dict[str, Any]] = {
    "timeout": number("Read timeout (s)", "Seconds to wait for an answer.", default=60, minimum=0),
    "connect_timeout": number("Connect timeout (s)", "Seconds to wait for a connection.", default=10, minimum=0),
    "retries": number("Attempts", "Attempts per request for 429, 5xx and dropped connections.", default=6, minimum=1, integer=True),
    "backoff_seconds": number("First backoff (s)", "Backoff before the first retry, doubled each retry (with jitter).", default=1, minimum=0),
    "max_backoff_seconds": number("Longest backoff (s)", "Cap of the exponential backoff; Retry-After still wins.", default=60, minimum=0),
    "concurrency": number("Concurrency", "Requests in flight at once where an extraction fans out.", default=4, minimum=1, integer=True),
}

# One entry per vendor: connection type, hook, and the form (hidden/relabelled standard
# fields, placeholders, and typed extras).
CONNECTION_TYPES: list[dict[str, Any]] = [
    {
        "connection-type": "recreativ",
        "hook-class-name": "vendorflow.hooks.recreativ.RecreativHook",
        "hook-name": "Recreativ",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port", "login"],
            "relabeling": {"host": "API root URL", "password": "Auth-Token"},
            "placeholders": {"host": "https://recreativ.com/api", "password": "the key from your Recreativ profile page"},
        },
        "conn-fields": {
            "requests_per_second": number(
                "Requests per second", "Recreativ's limit per Auth-Token, shared by every task and worker.", default=5, minimum=0
            ),
            **COMMON_FIELDS,
        },
    },
]


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "vendorflow",
        "name": "vendorflow",
        "description": "Hooks and operators for Recreativ, Recomendo, Footprints, Allyy and Algonomy.",
        "versions": [__version__],
        "connection-types": CONNECTION_TYPES,
    }
