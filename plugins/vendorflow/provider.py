"""Registers the vendor connection types with Airflow (the ``apache_airflow_provider`` entry point).

With the project installed (``pip install -e .``, which ``make`` does), the
Airflow UI offers each vendor as a connection type with its own form. Each
vendor's form is declared as data in ``vendorflow.vendors.<vendor>.form`` and
collected here, so the UI builds it without importing any hook.
"""

from __future__ import annotations

from typing import Any

from vendorflow import __version__, vendors


def _connection_types() -> list[dict[str, Any]]:
    return [vendors.module(name, "form").FORM for name in vendors.names()]


# One entry per vendor: connection type, hook, and the form (hidden/relabelled standard
# fields, placeholders, and typed extras).
CONNECTION_TYPES: list[dict[str, Any]] = _connection_types()


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "vendorflow",
        "name": "vendorflow",
        "description": "Hooks and operators for Recreativ, Recomendo, Footprints, Allyy and Algonomy.",
        "versions": [__version__],
        "connection-types": CONNECTION_TYPES,
    }
