"""One hook per vendor: ``vendorflow.hooks.<vendor>`` exposes its hook class as ``HOOK``."""

from __future__ import annotations

from typing import Any

from vendorflow._modules import vendor_module


def hook_class(kind: str) -> type[Any]:
    return vendor_module(__name__, kind, "hook").HOOK


def get_hook(kind: str, conn_id: str | None = None) -> Any:
    return hook_class(kind)(conn_id=conn_id)
