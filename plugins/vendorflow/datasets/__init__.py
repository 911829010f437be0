"""The registry of declared datasets: ``get("recreativ/campaigns")``, ``for_vendor("recreativ")``.

Each vendor module under this package exposes ``DATASETS``; it is imported on
first use, so declaring a new vendor needs no change here.
"""

from __future__ import annotations

from vendorflow._modules import vendor_module
from vendorflow.datasets.spec import Column, DatasetSpec, Expect, ExtractContext, Records, param

__all__ = ["Column", "DatasetSpec", "Expect", "ExtractContext", "Records", "param", "get", "for_vendor"]


def for_vendor(vendor: str) -> tuple[DatasetSpec, ...]:
    return tuple(vendor_module(__name__, vendor, "datasets are declared").DATASETS)


def get(key: str) -> DatasetSpec:
    vendor, _, name = key.partition("/")
    for spec in for_vendor(vendor):
        if spec.name == name:
            return spec
    known = ", ".join(s.key_name for s in for_vendor(vendor))
    raise KeyError(f"unknown dataset {key!r}; {vendor} declares: {known}")
