"""Registers the vendor connection types with Airflow (the ``apache_airflow_provider`` entry point).

With the project installed (``pip install -e .``, which ``make`` does), the
Airflow UI offers each vendor as a connection type with its own form. Each
vendor's form is declared as data in ``vendorflow.forms.<vendor>`` and
collected here, so the UI builds it without importing any hook.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from vendorflow import __version__, forms


def _connection_types() -> list[dict[str, Any]]:
    names = sorted(m.name for m in pkgutil.iter_modules(forms.__path__) if not m.name.startswith("_"))
    return [importlib.import_module(f"{forms.__name__}.{name}").FORM for name in names]


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
