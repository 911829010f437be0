"""What every vendor's connection form (``vendorflow.vendors.<vendor>.form``, exposing ``FORM``) is built from.

A form is data in Airflow 3.3's provider format (``ui-field-behaviour`` and
``conn-fields``): the UI builds it without importing any hook. Each
``conn-fields`` entry is a typed input stored in the connection's extra JSON.
"""

from __future__ import annotations

from typing import Any


def number(
    label: str, description: str, *, default: float | None = None, minimum: float | None = None, integer: bool = False
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["integer" if integer else "number", "null"]}
    if default is not None:
        schema["default"] = default
    if minimum is not None:
        schema["minimum"] = minimum
    return {"label": label, "description": description, "schema": schema}


def text(
    label: str, description: str, *, default: str | None = None, secret: bool = False, choices: list[str] | None = None
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if default is not None:
        schema["default"] = default
    if secret:
        schema["format"] = "password"
    if choices:
        schema["enum"] = choices
    return {"label": label, "description": description, "schema": schema}


# Extras every vendor connection understands (vendorflow.hook.VendorHook reads them).
COMMON_FIELDS: dict[str, dict[str, Any]] = {
    "timeout": number("Read timeout (s)", "Seconds to wait for an answer.", default=60, minimum=0),
    "connect_timeout": number("Connect timeout (s)", "Seconds to wait for a connection.", default=10, minimum=0),
    "retries": number(
        "Attempts", "Attempts per request for 429, 5xx and dropped connections.", default=6, minimum=1, integer=True
    ),
    "backoff_seconds": number(
        "First backoff (s)", "Backoff before the first retry, doubled each retry (with jitter).", default=1, minimum=0
    ),
    "max_backoff_seconds": number(
        "Longest backoff (s)", "Cap of the exponential backoff; Retry-After still wins.", default=60, minimum=0
    ),
    "concurrency": number(
        "Concurrency", "Requests in flight at once where an extraction fans out.", default=4, minimum=1, integer=True
    ),
}
