"""DAG parse cost: seconds to import each file of dags/ (after airflow.sdk), and the heavy modules it pulls in.

Each file is parsed 5 times in a fresh interpreter; the median is reported.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import importlib.util, json, sys, time
import airflow.sdk
before = set(sys.modules)
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
seconds = time.perf_counter() - start
watched = {{"pandas", "pyarrow", "great_expectations", "numpy", "duckdb"}}
heavy = sorted({{m.split(".")[0] for m in set(sys.modules) - before}} & watched)
print(json.dumps({{"seconds": seconds, "heavy": heavy}}))
"""


def main() -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}"}
    total = 0.0
    print(f"{'DAG file':<32} {'median s':>9}  heavy imports")
    for path in sorted((ROOT / "dags").glob("*.py")):
        runs = []
        heavy: list[str] = []
        for _ in range(5):
            out = subprocess.run(
                [sys.executable, "-c", PROBE.format(path=str(path))],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(out.stdout.strip().splitlines()[-1])
            runs.append(result["seconds"])
            heavy = result["heavy"]
        median = statistics.median(runs)
        total += median
        print(f"{path.name:<32} {median:>9.3f}  {', '.join(heavy) or 'none'}")
    print(f"{'all files':<32} {total:>9.3f}")


if __name__ == "__main__":
    main()
