"""Run the benchmarks: all of them, or those named on the command line."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main() -> int:
    names = sys.argv[1:] or sorted(
        m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_")
    )
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"\n=== bench/{name}.py: {(module.__doc__ or '').strip().splitlines()[0]}", flush=True)
        started = time.monotonic()
        module.main()
        print(f"=== {name}: {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
