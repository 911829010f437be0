"""Finding a vendor's module by convention (``vendorflow.<kind>.<vendor>``) without a central list."""

from __future__ import annotations

import importlib
from types import ModuleType


def vendor_module(package: str, vendor: str, what: str) -> ModuleType:
    """Import ``<package>.<vendor>``; a vendor without one is a ``KeyError`` naming ``what`` is missing."""
    name = f"{package}.{vendor}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            raise KeyError(f"no {what} for vendor {vendor!r}") from None
        raise
