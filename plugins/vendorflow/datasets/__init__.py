"""The registry of declared datasets: ``get("recreativ/campaigns")``, ``for_vendor("recreativ")``, ``declared()``.

Each vendor declares its datasets in ``vendorflow.vendors.<vendor>.datasets``
(``DATASETS``); a module is imported on first use, so declaring a new vendor
needs no change here.
"""

from __future__ import annotations

from vendorflow import vendors
from vendorflow.datasets.spec import Column, DatasetSpec, Expect, ExtractContext, Param, Records, param

__all__ = [
    "Column",
    "DatasetSpec",
    "Expect",
    "ExtractContext",
    "Param",
    "Records",
    "param",
    "get",
    "for_vendor",
    "declared",
]


def for_vendor(vendor: str) -> tuple[DatasetSpec, ...]:
    try:
        return tuple(vendors.module(vendor, "datasets").DATASETS)
    except KeyError:
        raise KeyError(f"no datasets are declared for vendor {vendor!r}") from None


def declared() -> list[DatasetSpec]:
    """Every declared dataset of every vendor, sorted by ``<vendor>/<name>``."""
    return sorted((s for v in vendors.names() for s in for_vendor(v)), key=lambda s: s.key_name)


def get(key: str) -> DatasetSpec:
    vendor, _, name = key.partition("/")
    for spec in for_vendor(vendor):
        if spec.name == name:
            return spec
    known = ", ".join(s.key_name for s in for_vendor(vendor))
    raise KeyError(f"unknown dataset {key!r}; {vendor} declares: {known}")
