"""A child process for the publish probes: runs one dataset into a lake, optionally killing itself
(SIGKILL, no cleanup of any kind) at a named step, or pausing at one until told to go on.

``python -m tests.reliability._lake_child ROOT RUN_ID ROWS [KILL_AT] [PAUSE_FILE]``
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from tests.reliability.fake import DAY, SPEC, FakeHook, rows
from vendorflow.pipeline import run as run_module
from vendorflow.pipeline import storage


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    root, run_id, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    kill_at = sys.argv[4] if len(sys.argv) > 4 else ""
    pause_file = Path(sys.argv[5]) if len(sys.argv) > 5 else None
    lake = storage.Lake(root)

    def wrap(owner: object, name: str, step: str, after: bool = False) -> None:
        original = getattr(owner, name)

        def wrapped(*args, **kwargs):  # type: ignore[no-untyped-def]
            if kill_at == step and not after:
                die()
            result = original(*args, **kwargs)
            if kill_at == step + ":after":
                die()
            return result

        setattr(owner, name, wrapped)

    wrap(storage.ParquetStream, "write", "write")
    wrap(storage.ParquetStream, "close", "close")
    wrap(run_module, "validate_parquet", "validate")
    wrap(storage.Lake, "seal", "seal")
    original_replace = os.replace

    def replace(src, dst, *args, **kwargs):  # type: ignore[no-untyped-def]
        publishing = str(dst).endswith("/" + storage.DATA_FILE)
        if publishing and kill_at == "replace":
            die()
        original_replace(src, dst, *args, **kwargs)
        if publishing and kill_at == "replace:after":
            die()

    storage.os.replace = replace  # type: ignore[assignment]
    if pause_file is not None:  # hold the partition: proves a second run waits for the lock
        original_publish = storage.Lake.publish

        def slow_publish(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            pause_file.write_text("publishing")
            time.sleep(float(os.environ.get("PAUSE_SECONDS", "1.5")))
            return original_publish(self, *args, **kwargs)

        storage.Lake.publish = slow_publish  # type: ignore[method-assign]
    pages = [rows(0, count)] if count else []
    run_module.run_dataset(SPEC, hook=FakeHook(pages), dt=DAY, run_id=run_id, lake=lake, accept_shrink=True)


if __name__ == "__main__":
    main()
