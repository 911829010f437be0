"""No plain e-mail or phone number (and no name or birthday) of a Footprints lead or loyalty client reaches
Parquet by default; the same scan finds them as soon as the pseudonymisation is switched off."""

from __future__ import annotations

import re
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from include.sandbox.control import Sandbox
from vendorflow.pipeline.run import run_dataset
from vendorflow.pipeline.storage import Lake
from vendorflow.vendors.footprints.datasets import LEADS, LOYALTY_CODES
from vendorflow.vendors.footprints.hook import FootprintsHook

pytestmark = pytest.mark.integration
DAY = date(2024, 3, 5)
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
PHONE = re.compile(r"\+?[\d ()-]{9,}")  # a whole cell that is a phone number


def personal_values(conn: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Every e-mail, phone, name and birthday the sandbox serves for the day's leads and all codes, read directly."""
    host = conn["host"]
    token = requests.post(
        f"{host}/api/token",
        auth=(f"sandbox-{uuid.uuid4().hex[:6]}", "sandbox-x"),
        data={"grant_type": "client_credentials"},
        timeout=10,
    ).json()["access_token"]
    records: list[dict[str, Any]] = []
    page = 1
    while batch := requests.get(
        f"{host}/api/lead",
        params={
            "access_token": token,
            "startDate": DAY.isoformat(),
            "endDate": DAY.isoformat(),
            "pageSize": 100,
            "page": page,
        },
        timeout=10,
    ).json():
        records.extend(batch)
        page += 1
    page = 1
    while clients := requests.post(
        f"{host}/api/loyaltyCode/list", params={"access_token": token}, data={"page": page}, timeout=10
    ).json()["clients"]:
        records.extend(c["client"] for c in clients if c["client"])
        page += 1
    contact = {r[k] for r in records for k in ("userEmail", "userPhone") if r.get(k)}
    contact |= {v.strip().lower() for v in contact} | {re.sub(r"\D", "", v) for v in contact if "@" not in v}
    people = {r[k] for r in records for k in ("userFirstName", "userLastName", "userBirthday") if r.get(k)}
    return contact, people


def string_cells(root: Path) -> list[str]:
    cells: list[str] = []
    for path in root.rglob("*.parquet"):
        table = pq.read_table(path)
        for column in table.itercolumns():
            if pa.types.is_string(column.type):
                cells.extend(v for v in column.to_pylist() if v is not None)
    return cells


def extract_both(data_root: Path) -> Path:
    lake = Lake(str(data_root))
    for spec in (LEADS, LOYALTY_CODES):
        run_dataset(spec, hook=FootprintsHook(), dt=DAY, run_id=f"pii-{uuid.uuid4().hex[:6]}", lake=lake)
    return data_root / "footprints"


def test_no_plain_email_phone_or_name_reaches_parquet_by_default(
    sandbox: Sandbox, connect, state_dir, data_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    conn = connect("footprints")
    contact, people = personal_values(conn)
    assert len(contact) > 500 and people
    cells = string_cells(extract_both(data_root))
    assert len(cells) > 10_000
    assert not contact & set(cells)
    assert not people & set(cells)
    assert not [c for c in cells if EMAIL.search(c) or PHONE.fullmatch(c)]
    names = {f.name for p in (data_root / "footprints").rglob("*.parquet") for f in pq.read_schema(p)}
    assert {"user_email_hmac", "user_phone_hmac", "client_email_hmac", "client_phone_hmac"} <= names
    assert not {n for n in names if re.search(r"(email|phone)$", n)}

    # With the pseudonymisation switched off the same scan finds the plain values: it is not vacuous.
    import vendorflow.pipeline.convert as convert

    monkeypatch.setattr(convert, "pseudonymise", lambda value, kind, key: value)
    cells = string_cells(extract_both(data_root))
    assert contact & set(cells) and [c for c in cells if EMAIL.search(c)] and [c for c in cells if PHONE.fullmatch(c)]
