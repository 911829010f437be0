"""The ``recreativ`` connection form."""

from __future__ import annotations

from typing import Any

from vendorflow.forms import COMMON_FIELDS, number

FORM: dict[str, Any] = {
    "connection-type": "recreativ",
    "hook-class-name": "vendorflow.vendors.recreativ.hook.RecreativHook",
    "hook-name": "Recreativ",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port", "login"],
        "relabeling": {"host": "API root URL", "password": "Auth-Token"},
        "placeholders": {"host": "https://recreativ.com/api", "password": "the key from your Recreativ profile page"},
    },
    "conn-fields": {
        "requests_per_second": number(
            "Requests per second",
            "Recreativ's limit per Auth-Token, shared by every task and worker.",
            default=5,
            minimum=0,
        ),
        **COMMON_FIELDS,
    },
}
