"""The ledger means the same on SQLite (one machine) and PostgreSQL (every host): compare-and-set under
contention from several processes, the exclusive section, a process killed inside it, leases; and a
PostgreSQL that cannot be used fails at once, naming the variable and the host, never the password."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from vendorflow.errors import ConfigError
from vendorflow.ledger import Ledger, lease

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """How to open a ledger of this test on one backend (picklable, for child processes)."""
    if request.param == "sqlite":
        return {"path": str(tmp_path / "ledger.sqlite")}
    return {"url": request.getfixturevalue("postgres_url")}


def open_ledger(where: dict[str, Any], name: str) -> Ledger:
    if "path" in where:
        return Ledger(name, Path(where["path"]))
    return Ledger(name, url=where["url"])


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def test_the_api_behaves_the_same(where: dict[str, Any]) -> None:
    ledger = open_ledger(where, unique("optouts"))
    ledger.put("u1", "requested", {"source": "ui"})
    ledger.put_many([("u2", "requested", None), ("u3", "requested", None)])
    assert ledger.put("u1", "accepted", {"answer": {}}, only_if="requested")
    assert not ledger.put("u1", "accepted", {}, only_if="requested")
    assert not ledger.put("u9", "claimed", {}, only_if="requested")  # absent is not "requested"
    assert ledger.put("u9", "claimed", {}, only_if=None)
    assert ledger.get("u1").status == "accepted" and ledger.get("u1").data == {"answer": {}}
    assert [e.key for e in ledger.with_status("requested")] == ["u2", "u3"]
    assert ledger.count() == 4 and ledger.count("accepted") == 1
    assert set(ledger.get_many(["u1", "u3", "nope"])) == {"u1", "u3"}
    assert ledger.put_many([("u1", "requested", None), ("u4", "requested", None)], only_if_absent=True) == 1
    assert {e.key for e in ledger.entries()} == {"u1", "u2", "u3", "u4", "u9"}
    with ledger.exclusive() as tx:
        tx.put("counter", "n", {"value": 1})
        assert tx.get("counter").data == {"value": 1}
    with pytest.raises(RuntimeError), ledger.exclusive() as tx:
        tx.put("rolled-back", "n", {})
        raise RuntimeError("the section failed")
    assert ledger.get("rolled-back") is None


def _contend(where: dict[str, Any], name: str, worker: int, out: Any) -> None:
    ledger = open_ledger(where, name)
    won = 0
    for key in range(60):
        if ledger.put(f"k{key}", "claimed", {"worker": worker}, only_if=None):
            won += 1
    for _ in range(5):
        with ledger.exclusive() as tx:
            counter = tx.get("counter")
            tx.put("counter", "n", {"value": (counter.data["value"] if counter else 0) + 1})
    out.put(won)


def test_compare_and_set_and_the_exclusive_section_hold_across_processes(where: dict[str, Any]) -> None:
    name = unique("race")
    queue: Any = multiprocessing.Queue()
    processes = [multiprocessing.Process(target=_contend, args=(where, name, w, queue)) for w in range(6)]
    for p in processes:
        p.start()
    wins = [queue.get(timeout=120) for _ in processes]
    for p in processes:
        p.join(timeout=60)
    assert sum(wins) == 60  # every key claimed exactly once
    assert open_ledger(where, name).get("counter").data == {"value": 30}  # no lost update


def _die_inside(where: dict[str, Any], name: str, ready: Any) -> None:
    ledger = open_ledger(where, name)
    with ledger.exclusive() as tx:
        tx.put("half-done", "n", {})
        ready.set()
        time.sleep(60)  # killed here, inside the section


def test_a_process_killed_inside_the_exclusive_section_leaves_nothing_and_blocks_no_one(where: dict[str, Any]) -> None:
    name = unique("crash")
    open_ledger(where, name)
    ready = multiprocessing.Event()
    process = multiprocessing.Process(target=_die_inside, args=(where, name, ready))
    process.start()
    assert ready.wait(60)
    os.kill(process.pid, signal.SIGKILL)
    process.join(30)
    ledger = open_ledger(where, name)
    with ledger.exclusive() as tx:  # the dead process's lock went with it
        assert tx.get("half-done") is None  # and its write was rolled back
        tx.put("after", "n", {})
    assert ledger.get("after") is not None


def _hold(where: dict[str, Any], name: str, log_path: str, started: Any) -> None:
    leases = open_ledger(where, "vendorflow_leases")
    started.set()
    with lease(name, ledger=leases, seconds=5, poll=0.05):
        with open(log_path, "a") as handle:
            handle.write(f"in {os.getpid()}\n")
        time.sleep(0.3)
        with open(log_path, "a") as handle:
            handle.write(f"out {os.getpid()}\n")


def test_a_lease_has_one_holder_at_a_time_across_processes(where: dict[str, Any], tmp_path: Path) -> None:
    name, log_path = unique("sender"), str(tmp_path / "lease.log")
    events = [multiprocessing.Event() for _ in range(4)]
    processes = [multiprocessing.Process(target=_hold, args=(where, name, log_path, e)) for e in events]
    for p in processes:
        p.start()
    for p in processes:
        p.join(60)
    lines = Path(log_path).read_text().split()
    pairs = [lines[i : i + 4] for i in range(0, len(lines), 4)]
    assert len(pairs) == 4 and all(p[0] == "in" and p[2] == "out" and p[1] == p[3] for p in pairs), lines


def _hold_and_die(where: dict[str, Any], name: str, held: Any) -> None:
    with lease(name, ledger=open_ledger(where, "vendorflow_leases"), seconds=600):
        held.set()
        time.sleep(60)


def test_a_lease_whose_holder_died_is_taken_over(where: dict[str, Any]) -> None:
    name = unique("sender")
    held = multiprocessing.Event()
    process = multiprocessing.Process(target=_hold_and_die, args=(where, name, held))
    process.start()
    assert held.wait(60)
    os.kill(process.pid, signal.SIGKILL)
    process.join(30)
    started = time.monotonic()
    with lease(name, ledger=open_ledger(where, "vendorflow_leases"), seconds=600):
        pass
    assert time.monotonic() - started < 60  # not the 600 s the dead holder's lease had left


def test_an_unreachable_postgresql_names_the_variable_and_host_never_the_password() -> None:
    with pytest.raises(ConfigError) as error:
        Ledger("anything", url="postgresql://vf:s3cretpass@127.0.0.1:1/vendorflow")
    text = str(error.value)
    assert "PostgreSQL at 127.0.0.1:1/vendorflow (VENDORFLOW_LEDGER_URL)" in text and "s3cretpass" not in text


def test_a_ledger_url_that_is_not_postgresql_is_refused() -> None:
    with pytest.raises(ConfigError, match="VENDORFLOW_LEDGER_URL must be a postgresql://"):
        Ledger("anything", url="mysql://h/db")


def test_a_lease_expires_by_the_database_clock_not_the_holder_s(where: dict[str, Any]) -> None:
    name = unique("sender")
    leases = open_ledger(where, "vendorflow_leases")
    with leases.exclusive() as tx:  # a holder on another host, whose lease ran out a second ago by the database
        tx.put(name, "held", {"holder": "elsewhere|1|1|x", "expires_at": tx.clock() - 1})
    started = time.monotonic()
    with lease(name, ledger=leases, seconds=30):
        with leases.exclusive() as tx:
            held = tx.get(name)
            assert held.data["holder"].startswith(os.uname().nodename) and held.data["expires_at"] > tx.clock() + 25
    assert time.monotonic() - started < 10
    with leases.exclusive() as tx:  # a live holder elsewhere: not taken
        tx.put(name, "held", {"holder": "elsewhere|1|1|x", "expires_at": tx.clock() + 30})
    import threading

    got = threading.Event()

    def take() -> None:
        with lease(name, ledger=open_ledger(where, "vendorflow_leases"), seconds=30, poll=0.05):
            got.set()

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    assert not got.wait(1.0)  # still held by the other host
    with leases.exclusive() as tx:
        tx.put(name, "released", {"holder": "elsewhere|1|1|x"})
    assert got.wait(30)
    thread.join(30)  # its release, before the database goes away
