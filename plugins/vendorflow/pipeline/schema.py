"""pyarrow schemas from dataset declarations: fixed in code, never inferred from data."""

from __future__ import annotations

import pyarrow as pa

from vendorflow.datasets.spec import DatasetSpec, output_name
from vendorflow.settings import PiiMode

EXTRACTED_AT = "_extracted_at"
ACCOUNT = "account"  # the vendor account a row was read from (vendorflow.accounts)

ARROW_TYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "decimal": pa.decimal128(18, 4),
    "json": pa.string(),  # nested values kept as JSON text
}


def arrow_schema(spec: DatasetSpec, pii_mode: PiiMode = "hmac") -> pa.Schema:
    fields = [pa.field(output_name(c, pii_mode), ARROW_TYPES[c.type], nullable=c.nullable) for c in spec.columns]
    fields.append(pa.field(ACCOUNT, pa.string(), nullable=False))
    fields.append(pa.field(EXTRACTED_AT, ARROW_TYPES["timestamp"], nullable=False))
    metadata = {"vendorflow.dataset": spec.key_name, "vendorflow.description": spec.description}
    return pa.schema(fields, metadata=metadata)
