"""The 30-minute rule across processes, against the sandbox's own record of /v1/train calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from include.sandbox.control import Sandbox

PROJECT_ROOT = Path(__file__).resolve().parents[2]

WORKER = """
import json, os, sys, time
from pathlib import Path
sys.path[:0] = [{root!r}, {root!r} + "/plugins"]
from vendorflow.hooks.recomendo import RecomendoHook
from vendorflow.ledger import Ledger
from vendorflow.operators.recomendo import TrainingGuard
hook = RecomendoHook()
guard = TrainingGuard(Ledger("recomendo_training"), hook.account_key, hook.training_interval, hook.training_margin)
hook.tokens.get()
Path(sys.argv[1] + ".ready").touch()
while not Path(sys.argv[2]).exists():
    time.sleep(0.005)
decision = guard.request("run-" + sys.argv[3])
if decision.action == "send":
    guard.finish(decision.training_id, "sent", hook.train()["messageCode"])
print(json.dumps({{"action": decision.action, "training": decision.training_id, "due": decision.due_at}}))
"""


def trainings(sandbox: Sandbox, conn: dict[str, Any]) -> list[dict[str, Any]]:
    return sandbox._call("GET", "/_sandbox/recomendo/trainings", params={"client": conn["login"]})


def test_ten_processes_asking_at_once_make_exactly_one_train_call(sandbox: Sandbox, connect, state_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    conn = connect("recomendo")  # the real 1800 s window
    go = tmp_path / "go"
    code = WORKER.format(root=str(PROJECT_ROOT))
    workers = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path / f"w{n}"), str(go), str(n)], stdout=subprocess.PIPE, text=True, env=os.environ.copy())
        for n in range(10)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"w{n}.ready").exists() for n in range(10)):
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers), "a worker died before the start"
        time.sleep(0.05)
    go.touch()
    results = [json.loads(w.communicate(timeout=120)[0].strip().splitlines()[-1]) for w in workers]
    assert all(w.returncode == 0 for w in workers)

    calls = trainings(sandbox, conn)
    assert [c["status"] for c in calls] == [200]  # one call, accepted: nobody else called inside the window
    actions = sorted(r["action"] for r in results)
    assert actions == ["send"] + ["wait"] * 9
    waiting = {r["training"] for r in results if r["action"] == "wait"}
    assert len(waiting) == 1  # the other nine became one pending training
    due = next(r["due"] for r in results if r["action"] == "wait")
    assert due >= calls[0]["t"] + 1800 - 1  # at the 30-minute mark of the call (clocks of one machine)


def test_a_pending_training_is_made_once_its_window_opens(sandbox: Sandbox, connect, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from vendorflow.hooks.recomendo import RecomendoHook
    from vendorflow.ledger import Ledger
    from vendorflow.operators.recomendo import TrainingGuard

    sandbox.configure("recomendo", train_interval_seconds=2)
    conn = connect("recomendo", training_interval_seconds=2, training_margin_seconds=0.2)
    hook = RecomendoHook()
    guard = TrainingGuard(Ledger("recomendo_training"), hook.account_key, hook.training_interval, hook.training_margin)
    first = guard.request("a")
    assert first.action == "send"
    guard.finish(first.training_id, "sent", hook.train()["messageCode"])
    waiting = [guard.request(k) for k in ("b", "c", "d")]
    assert {w.action for w in waiting} == {"wait"}
    time.sleep(max(0.0, waiting[0].due_at - time.time()))
    claims = [guard.claim(w.training_id) for w in waiting]
    assert [c.action for c in claims] == ["send", "done", "done"]
    guard.finish(claims[0].training_id, "sent", hook.train()["messageCode"])
    calls = trainings(sandbox, conn)
    assert [c["status"] for c in calls] == [200, 200] and calls[1]["t"] - calls[0]["t"] >= 2
