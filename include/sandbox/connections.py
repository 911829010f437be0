"""Airflow connections that point every vendor hook at a running sandbox.

Each sandbox vendor module may define ``connection(base_url) -> (conn_id, dict)``;
the demo, ``make airflow`` and the tests all build their ``AIRFLOW_CONN_*``
variables from here, so a new vendor is wired in one place.
"""

from __future__ import annotations

import importlib
import json

from include.sandbox.app import VENDOR_MODULES


def connections(base_url: str, *, suffix: str = "", tenant: str = "") -> dict[str, dict]:
    """``{conn_id: connection-as-dict}`` for every vendor; ``suffix`` makes credentials unique (own budgets).

    ``tenant="b"`` gives the second tenant's (``<vendor>_b``: other data, other credentials)."""
    found: dict[str, dict] = {}
    for name in VENDOR_MODULES:
        module = importlib.import_module(f"include.sandbox.{name}")
        make = getattr(module, "connection", None)
        if make:
            conn_id, conn = make(base_url.rstrip("/"), suffix, tenant) if tenant else make(base_url.rstrip("/"), suffix)
            found[conn_id] = conn
    return found


def environment(base_url: str, *, suffix: str = "", tenant: str = "") -> dict[str, str]:
    """The same, as ``AIRFLOW_CONN_<ID>`` environment variables (JSON form)."""
    return {
        f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)
        for conn_id, conn in connections(base_url, suffix=suffix, tenant=tenant).items()
    }
