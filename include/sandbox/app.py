"""The sandbox application: every vendor under its prefix, plus the control API under ``/_sandbox``.

Every module of this package that defines ``vendor() -> Vendor`` is a vendor
(:data:`VENDOR_MODULES`), so a new vendor is one new module. A vendor whose
``vendor()`` takes a ``tenant`` is served twice: its first tenant at its usual
prefix, a second one (``b``: other data, credentials starting with ``tenantb``)
under ``/b/<prefix>``, named ``<vendor>-b`` below. Control API (JSON):

- ``GET  /_sandbox/health``
- ``POST /_sandbox/reset``: forget faults, counters, windows; restore every vendor's config
- ``GET  /_sandbox/config`` / ``PUT /_sandbox/config/{vendor}``: read / merge a vendor's settings
  (``rate_limit``, ``rate_window``, ``latency_ms`` and the vendor's own)
- ``POST /_sandbox/faults`` / ``DELETE /_sandbox/faults`` / ``GET /_sandbox/faults``
- ``GET  /_sandbox/stats[?vendor=]``: requests, throttled (429s the limit served), faults served, by status and path
- ``GET  /_sandbox/requests[?vendor=]``: every request seen, in order
- ``GET  /_sandbox/{vendor}/...``: vendor-specific views (each module may add ``control_routes``)
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import asdict, fields
from typing import Any

from fastapi import Body, FastAPI, HTTPException

from include.sandbox.core import TENANTS, Fault, SandboxMiddleware, SandboxState

_MACHINERY = frozenset({"app", "connections", "control", "core"})


def _vendor_modules() -> tuple[str, ...]:
    package = importlib.import_module("include.sandbox")
    names = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_") or info.name in _MACHINERY:
            continue
        if hasattr(importlib.import_module(f"include.sandbox.{info.name}"), "vendor"):
            names.append(info.name)
    return tuple(sorted(names))


VENDOR_MODULES: tuple[str, ...] = _vendor_modules()


def create_app() -> Any:
    vendors = []
    modules = []
    for name in VENDOR_MODULES:
        module = importlib.import_module(f"include.sandbox.{name}")
        modules.append(module)
        tenants = TENANTS if "tenant" in inspect.signature(module.vendor).parameters else ("",)
        vendors.extend(module.vendor(tenant) for tenant in tenants)
    state = SandboxState(vendors)
    control = FastAPI(title="Vendor sandbox", openapi_url=None, docs_url=None, redoc_url=None)

    @control.get("/_sandbox/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "vendors": {v.name: v.prefix for v in vendors}}

    @control.post("/_sandbox/reset")
    def reset() -> dict[str, Any]:
        state.reset()
        return {"ok": True}

    @control.get("/_sandbox/config")
    def get_config() -> dict[str, Any]:
        return {v.name: v.config for v in vendors}

    @control.put("/_sandbox/config/{vendor}")
    def put_config(vendor: str, changes: dict[str, Any] = Body(...)) -> dict[str, Any]:
        if vendor not in state.vendors:
            raise HTTPException(404, f"unknown vendor {vendor}")
        state.vendors[vendor].config.update(changes)
        return state.vendors[vendor].config

    FAULT_KINDS = ("status", "drop", "slow", "malformed", "echo", "trickle")

    @control.post("/_sandbox/faults")
    def add_fault(spec: dict[str, Any] = Body(...)) -> dict[str, Any]:
        known = {f.name for f in fields(Fault)}
        unknown = set(spec) - known
        if unknown:
            raise HTTPException(400, f"unknown fault fields: {sorted(unknown)}")
        if spec.get("vendor") not in state.vendors:
            raise HTTPException(400, f"unknown vendor {spec.get('vendor')!r}")
        if spec.get("kind") not in FAULT_KINDS:
            raise HTTPException(400, f"kind must be one of {', '.join(FAULT_KINDS)}")
        fault = Fault(**spec)
        with state.lock:
            state.faults.append(fault)
        return asdict(fault)

    @control.get("/_sandbox/faults")
    def list_faults() -> list[dict[str, Any]]:
        with state.lock:
            return [asdict(f) for f in state.faults]

    @control.delete("/_sandbox/faults")
    def clear_faults() -> dict[str, Any]:
        with state.lock:
            state.faults.clear()
        return {"ok": True}

    @control.get("/_sandbox/stats")
    def stats(vendor: str | None = None) -> dict[str, Any]:
        return state.stats(vendor)

    @control.get("/_sandbox/requests")
    def seen(vendor: str | None = None) -> list[dict[str, Any]]:
        return state.requests(vendor)

    for module in modules:
        add_routes = getattr(module, "control_routes", None)
        if add_routes:
            add_routes(control, state)
    for vendor in vendors:
        control.mount(vendor.prefix, vendor.app)
    control.state.sandbox = state
    return SandboxMiddleware(control, state)
