"""The ledger: durable, compare-and-set, one critical section for all processes."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from vendorflow.ledger import Ledger


def test_put_get_and_statuses(tmp_path: Path) -> None:
    ledger = Ledger("optouts", tmp_path / "l.sqlite")
    ledger.put("u1", "requested", {"source": "ui"})
    ledger.put_many([("u2", "requested", None), ("u3", "requested", None)])
    assert ledger.put("u1", "accepted", {"answer": {}}, only_if="requested")
    assert not ledger.put("u1", "accepted", {}, only_if="requested")  # already moved on
    assert ledger.get("u1").status == "accepted"
    assert [e.key for e in ledger.with_status("requested")] == ["u2", "u3"]
    assert ledger.count() == 3 and ledger.count("accepted") == 1
    assert set(ledger.get_many(["u1", "u3", "nope"])) == {"u1", "u3"}
    assert ledger.put_many([("u1", "requested", None), ("u4", "requested", None)], only_if_absent=True) == 1
    assert ledger.get("u1").status == "accepted"
    entry = ledger.get("u1")
    assert entry.created_at <= entry.updated_at
    assert [e.key for e in ledger.entries()][-1] in {"u1", "u4"}


def test_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Ledger('x"; drop table', tmp_path / "l.sqlite")


def _claim(path: str, worker: int, out: multiprocessing.Queue[int]) -> None:
    ledger = Ledger("race", Path(path))
    won = 0
    for key in range(100):
        if ledger.put(f"k{key}", "claimed", {"worker": worker}, only_if=None):
            won += 1
    with ledger.exclusive() as tx:
        counter = tx.get("counter")
        tx.put("counter", "n", {"value": (counter.data["value"] if counter else 0) + 1})
    out.put(won)


def test_compare_and_set_and_exclusive_sections_hold_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "l.sqlite")
    queue: multiprocessing.Queue[int] = multiprocessing.Queue()
    processes = [multiprocessing.Process(target=_claim, args=(path, w, queue)) for w in range(8)]
    for p in processes:
        p.start()
    wins = [queue.get(timeout=60) for _ in processes]
    for p in processes:
        p.join(timeout=60)
    assert sum(wins) == 100  # every key claimed exactly once
    assert Ledger("race", Path(path)).get("counter").data == {"value": 8}  # no lost update
