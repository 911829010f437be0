"""One hook per vendor: ``vendorflow.hooks.<vendor>`` exposes its hook class as ``HOOK``."""

from __future__ import annotations

import importlib
from typing import Any


def hook_class(kind: str) -> type[Any]:
    try:
        module = importlib.import_module(f"{__name__}.{kind}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{kind}":
            raise KeyError(f"no hook for vendor {kind!r}") from None
        raise
    return module.HOOK


def get_hook(kind: str, conn_id: str | None = None) -> Any:
    return hook_class(kind)(conn_id=conn_id)
