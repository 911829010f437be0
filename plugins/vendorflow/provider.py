"""Registers the vendor connection types with Airflow (the ``apache_airflow_provider`` entry point).

With the project installed (``pip install -e .``, which ``make`` does), the
Airflow UI offers each vendor as a connection type with its own form.
"""

from __future__ import annotations

from typing import Any

from vendorflow import __version__

CONNECTION_TYPES = [
    {"connection-type": "recreativ", "hook-class-name": "vendorflow.hooks.recreativ.RecreativHook"},
]


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "vendorflow",
        "name": "vendorflow",
        "description": "Hooks and operators for Recreativ, Recomendo, Footprints, Allyy and Algonomy.",
        "versions": [__version__],
        "connection-types": CONNECTION_TYPES,
    }
