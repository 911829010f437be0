"""``make airflow``: Airflow's own UI (standalone, SQLite) wired to a sandbox, on http://localhost:8080.

Every DAG can be triggered and watched there; connections point at the
sandbox, data goes to ``data/``. Ctrl-C stops Airflow and the sandbox.
"""

from __future__ import annotations

import os
import subprocess
import sys

from include.local_env import PROJECT_ROOT, local_environment
from include.sandbox.control import running_sandbox


def main() -> int:
    port = int(os.environ.get("SANDBOX_PORT", "8765"))
    with running_sandbox(port) as sandbox:
        env = local_environment(sandbox.base_url)
        print(f"sandbox on {sandbox.base_url}; starting Airflow standalone (UI on http://localhost:8080) ...", flush=True)
        try:
            return subprocess.call([sys.executable, "-m", "airflow", "standalone"], env=env, cwd=PROJECT_ROOT)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    sys.exit(main())
