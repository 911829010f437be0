"""The ``footprints`` connection form."""

from __future__ import annotations

from typing import Any

from vendorflow.forms import COMMON_FIELDS, number, text

FORM: dict[str, Any] = {
    "connection-type": "footprints",
    "hook-class-name": "vendorflow.vendors.footprints.hook.FootprintsHook",
    "hook-name": "Footprints for Retail",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port"],
        "relabeling": {"host": "Tenant base URL", "login": "API key", "password": "API secret"},
        "placeholders": {
            "host": "https://yourtenant.footprintsforretail.com (paths /api/... are appended)",
            "login": "the key from support@footprintsforretail.com",
            "password": "the secret that goes with the key",
        },
    },
    "conn-fields": {
        "grant_type": text(
            "Grant type",
            "How the token is asked for: client_credentials, pin, or password (a hostess account).",
            default="client_credentials",
            choices=["client_credentials", "pin", "password"],
        ),
        "pin": text("PIN", "For grant type 'pin': the hostess PIN (digits).", secret=True),
        "username": text("Username", "For grant type 'password': the user name."),
        "user_password": text("User password", "For grant type 'password': that user's password.", secret=True),
        "page_size": number(
            "Leads per page",
            "pageSize asked for; the server may quietly return fewer.",
            default=500,
            minimum=1,
            integer=True,
        ),
        "requests_per_second": number(
            "Requests per second",
            "Budget per API key, shared by every task and worker (Footprints documents none).",
            default=20,
            minimum=0,
        ),
        **COMMON_FIELDS,
    },
}
