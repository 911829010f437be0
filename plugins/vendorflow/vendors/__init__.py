"""The five vendors, one package each: ``vendorflow.vendors.<vendor>``.

A vendor's package holds its whole story (its ``form``, ``hook``, ``datasets``,
its actions and the ``operators`` that adapt them to Airflow); what every
vendor shares (HTTP client, auth, paging, ledger, pipeline) lives outside it.
Vendors are found by convention, so adding one needs no central list.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any


def names() -> tuple[str, ...]:
    """Every vendor package, sorted."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg and not m.name.startswith("_")))


def module(vendor: str, part: str) -> ModuleType:
    """``vendorflow.vendors.<vendor>.<part>``; a vendor without one is a ``KeyError`` naming what is missing."""
    name = f"{__name__}.{vendor}.{part}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name in (name, f"{__name__}.{vendor}"):
            raise KeyError(f"vendor {vendor!r} has no {part} ({name})") from None
        raise


def hook_class(vendor: str) -> type[Any]:
    return module(vendor, "hook").HOOK


def get_hook(vendor: str, conn_id: str | None = None) -> Any:
    return hook_class(vendor)(conn_id=conn_id)
