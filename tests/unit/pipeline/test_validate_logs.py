"""A validation logs nothing of Great Expectations' below WARNING (they were 214 of a task log's 232 lines)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

PROBE = """
import json, logging, sys
from pathlib import Path
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append((record.name, record.levelno))
root = logging.getLogger()
root.setLevel(logging.DEBUG)
root.addHandler(Keep())
import pyarrow as pa
from vendorflow.datasets.spec import Column, DatasetSpec, Expect
from vendorflow.pipeline.validate import validate_table
spec = DatasetSpec(vendor="v", name="d", description="", columns=(Column("id", "int64", nullable=False),),
                   key=("id",), expectations=(Expect("ExpectColumnValuesToBeBetween", column="id", min_value=0),),
                   extract=lambda ctx: iter(()))
outcome = validate_table(spec, pa.table({"id": [1, 2, 3]}), facts={}, batch_name="b", run_name="r",
                         gx_root=Path(sys.argv[1]))
gx = [(n, l) for n, l in records if n.startswith("great_expectations") and l < logging.WARNING]
print(json.dumps({"success": outcome.success, "gx_below_warning": len(gx), "total": len(records)}))
"""


def test_a_validation_logs_no_great_expectations_line_below_warning(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
        "GX_ANALYTICS_ENABLED": "False",
    }
    env.pop("VENDORFLOW_GX_LOG_LEVEL", None)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "gx")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["success"] and result["gx_below_warning"] == 0, result
    # Not vacuous: asked for, GX's INFO lines are there.
    env["VENDORFLOW_GX_LOG_LEVEL"] = "INFO"
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "gx2")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1])["gx_below_warning"] > 50
