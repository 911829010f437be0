"""The 30-minute rule across processes, against the sandbox's own record of /v1/train calls."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

from include.sandbox.control import Sandbox

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def ask_at_once(barrier: Any, n: int, results: Any, claim_when_due: bool = False) -> None:
    """One worker process: ready its hook and token, wait for the others, then ask for a training."""
    from vendorflow.ledger import Ledger
    from vendorflow.vendors.recomendo.hook import RecomendoHook
    from vendorflow.vendors.recomendo.training import TrainingGuard

    hook = RecomendoHook()
    guard = TrainingGuard(Ledger("recomendo_training"), hook.account_key, hook.training_interval, hook.training_margin)
    hook.tokens.get()
    barrier.wait(timeout=120)
    decision = guard.request(f"run-{n}")
    if claim_when_due and decision.action == "wait":
        time.sleep(max(0.0, decision.due_at - time.time()))  # every worker claims at the same moment
        decision = guard.claim(decision.training_id)
    if decision.action == "send":
        guard.finish(decision.training_id, "sent", hook.train()["messageCode"])
    results.put({"action": decision.action, "training": decision.training_id, "due": decision.due_at})


def trainings(sandbox: Sandbox, conn: dict[str, Any]) -> list[dict[str, Any]]:
    return sandbox._call("GET", "/_sandbox/recomendo/trainings", params={"client": conn["login"]})


def test_ten_processes_asking_at_once_make_exactly_one_train_call(sandbox: Sandbox, connect, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    import vendorflow.vendors.recomendo.hook  # noqa: F401 - imported once here, inherited by the forked workers
    import vendorflow.vendors.recomendo.training  # noqa: F401

    conn = connect("recomendo")  # the real 1800 s window
    processes = 10
    context = multiprocessing.get_context("fork")  # separate processes, each with its own ledger connection
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=ask_at_once, args=(barrier, n, results)) for n in range(processes)]
    for worker in workers:
        worker.start()
    collected = [results.get(timeout=180) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0] * processes
    results = collected

    calls = trainings(sandbox, conn)
    assert [c["status"] for c in calls] == [200]  # one call, accepted: nobody else called inside the window
    actions = sorted(r["action"] for r in results)
    assert actions == ["send"] + ["wait"] * 9
    waiting = {r["training"] for r in results if r["action"] == "wait"}
    assert len(waiting) == 1  # the other nine became one pending training
    due = next(r["due"] for r in results if r["action"] == "wait")
    assert due >= calls[0]["t"] + 1800 - 1  # at the 30-minute mark of the call (clocks of one machine)


def test_a_pending_training_is_made_once_its_window_opens(sandbox: Sandbox, connect, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from vendorflow.ledger import Ledger
    from vendorflow.vendors.recomendo.hook import RecomendoHook
    from vendorflow.vendors.recomendo.training import TrainingGuard

    sandbox.configure("recomendo", train_interval_seconds=2)
    # The guard starts the window when it records a call, Recomendo when the call arrives: the
    # margin covers the transit (5 s in production). The token is fetched first so that the first
    # call's transit is one request, not an auth round trip too, on however busy a machine.
    conn = connect("recomendo", training_interval_seconds=2, training_margin_seconds=0.5)
    hook = RecomendoHook()
    hook.tokens.get()
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


def test_ten_processes_claiming_a_due_training_at_once_make_one_call(
    sandbox: Sandbox, connect, state_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    import vendorflow.vendors.recomendo.hook  # noqa: F401
    import vendorflow.vendors.recomendo.training  # noqa: F401
    from vendorflow.ledger import Ledger
    from vendorflow.vendors.recomendo.hook import RecomendoHook
    from vendorflow.vendors.recomendo.training import TrainingGuard

    sandbox.configure("recomendo", train_interval_seconds=3)
    conn = connect("recomendo", training_interval_seconds=3, training_margin_seconds=0.5)
    hook = RecomendoHook()
    hook.tokens.get()  # the first call's transit is one request (see the margin above)
    guard = TrainingGuard(Ledger("recomendo_training"), hook.account_key, hook.training_interval, hook.training_margin)
    first = guard.request("first")
    guard.finish(first.training_id, "sent", hook.train()["messageCode"])

    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(10), context.Queue()
    workers = [context.Process(target=ask_at_once, args=(barrier, n, results, True)) for n in range(10)]
    for worker in workers:
        worker.start()
    collected = [results.get(timeout=180) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(r["action"] for r in collected) == ["done"] * 9 + ["send"]
    calls = trainings(sandbox, conn)
    assert [c["status"] for c in calls] == [200, 200] and calls[1]["t"] - calls[0]["t"] >= 3
