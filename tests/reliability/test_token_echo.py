"""A vendor error that echoes the request's headers (an Algonomy 400 quoting ``Authorization: Bearer ...``)
puts no token anywhere: not in the published dataset's columns, not in any file under the data root, not in
the ledger's database file, not in a log line.

Not vacuous: the sandbox's request log shows the token that travelled, the echo is served, and the failed
id's error (masked) is in the published ``algonomy/optouts``.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from include.sandbox.control import Sandbox
from tests.e2e.test_algonomy_optout import algonomy, run_dag  # noqa: F401 - fixtures, used by name
from tests.e2e.test_footprints_leak import debug_log, everything_left_behind  # noqa: F401 - fixtures, used by name

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]


def strings_under(root: Path) -> str:
    """Every byte of every file under ``root`` as text, plus every string value of every Parquet file
    (compressed pages would hide a token from a byte search)."""
    parts = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        parts.append(path.read_bytes().decode("latin-1"))
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            for column in table.columns:
                if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                    parts.extend(v for v in column.to_pylist() if v)
    return "\n".join(parts)


def test_an_echoed_bearer_token_reaches_no_dataset_ledger_or_log(  # type: ignore[no-untyped-def]
    sandbox: Sandbox,
    algonomy: dict[str, Any],
    data_root: Path,
    state_dir: Path,
    debug_log: io.StringIO,
    capfd: pytest.CaptureFixture[str],
) -> None:
    api_key = algonomy["extra"]["api_key"]
    sandbox.fault("algonomy", "echo", status=400, method="PUT", path=f"/profile-command/v1/{api_key}/optOut/echo-me")
    run = run_dag({"user_ids": ["fine-1", "echo-me", "fine-2"]})
    assert run.state == "failed"  # one id was refused: the run says so, the others were sent

    tokens = set(sandbox._call("GET", "/_sandbox/algonomy/tokens"))
    assert len(tokens) == 1
    assert sandbox.stats("algonomy")["faults"] == 1

    published = pq.read_table(data_root / "algonomy" / "optouts").to_pylist()
    errors = {r["user_id"]: r["last_error"] for r in published}
    assert "Bad request" in str(errors["echo-me"]) and "Bearer ***" in str(errors["echo-me"])

    captured = capfd.readouterr()
    places = everything_left_behind([run], captured.out + captured.err, debug_log.getvalue(), data_root)
    places["data root"] = strings_under(data_root)
    # The ledger's database and WAL files (the token cache beside them holds the token by design).
    ledger_bytes = "".join(p.read_bytes().decode("latin-1") for p in state_dir.glob("ledger.sqlite*"))
    assert "echo-me" in ledger_bytes and "Bad request" in ledger_bytes
    places["ledger"] = ledger_bytes
    found = {where for where, text in places.items() for token in tokens if token in text}
    lines = [line for text in places.values() for line in text.splitlines() if any(t in line for t in tokens)]
    assert found == set(), f"a live token was found in: {sorted(found)}: {lines[:5]}"
