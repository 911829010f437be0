"""The shared budget: evenly spaced slots, reserved atomically by threads and processes."""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from vendorflow.http.ratelimit import FileSlotStore, RateLimiter, budget_key


def test_budget_key_is_stable_and_hides_the_credential() -> None:
    key = budget_key("recreativ", "super-secret-token")
    assert key == budget_key("recreativ", "super-secret-token")
    assert key != budget_key("recreativ", "other-token") != budget_key("algonomy", "super-secret-token")
    assert "secret" not in key and key.startswith("recreativ-")


class FakeClock:
    """Epoch nanoseconds that move only when the test says so."""

    def __init__(self, start_us: int = 1_700_000_000_000_000) -> None:
        self.us = start_us

    def __call__(self) -> int:
        return self.us * 1000


def test_reservations_are_spaced_by_the_interval(tmp_path: Path) -> None:
    store = FileSlotStore(tmp_path / "b.next", clock=FakeClock())
    waits = [store.reserve(100_000) for _ in range(5)]  # 0.1 s apart, reserved at the same instant
    assert waits == [0.0, 0.1, 0.2, 0.3, 0.4]


def test_an_idle_budget_does_not_bank_a_burst(tmp_path: Path) -> None:
    clock = FakeClock()
    store = FileSlotStore(tmp_path / "b.next", clock=clock)
    store.reserve(10_000)
    clock.us += 50_000  # idle for five intervals
    assert store.reserve(10_000) == 0.0
    assert store.reserve(10_000) == 0.01  # no saved-up credit


def test_a_real_clock_gives_the_same_schedule(tmp_path: Path) -> None:
    store = FileSlotStore(tmp_path / "b.next")  # time.time_ns
    waits = [store.reserve(1_000_000) for _ in range(3)]  # a second apart: scheduling noise is negligible
    assert [round(w) for w in waits] == [0, 1, 2]


def test_limiter_validates_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        RateLimiter("k", 0, store=FileSlotStore(tmp_path / "x"))
    with pytest.raises(ValueError):
        RateLimiter("k", 5, safety=1.5, store=FileSlotStore(tmp_path / "x"))
    limiter = RateLimiter("k", 5, safety=0.97, store=FileSlotStore(tmp_path / "x"))
    assert limiter.interval_us == round(1e6 / 4.85)


class RecordingClock:
    """The store's clock, remembering the instant it read under the lock."""

    def __init__(self) -> None:
        self.last = 0

    def __call__(self) -> int:
        self.last = time.time_ns()
        return self.last


def _reserve_many(path: str, count: int, out: multiprocessing.Queue[list[int]]) -> None:
    clock = RecordingClock()
    store = FileSlotStore(Path(path), clock=clock)
    starts = []
    for _ in range(count):
        wait = store.reserve(50_000)
        starts.append(clock.last // 1000 + round(wait * 1e6))  # the reserved slot, in epoch microseconds
    out.put(starts)


def test_threads_and_processes_share_one_schedule(tmp_path: Path) -> None:
    """Slots reserved by 2 processes x 3 threads never collide: all slots are >= one interval apart.

    The slots are the store's own arithmetic (read with an injected clock), not
    wall-clock observations, so a busy machine cannot make the test flaky."""
    path = str(tmp_path / "shared.next")
    queue: multiprocessing.Queue[list[int]] = multiprocessing.Queue()
    processes = [multiprocessing.Process(target=_reserve_many, args=(path, 20, queue)) for _ in range(2)]
    thread_starts: list[list[int]] = []

    def in_thread() -> None:
        local: multiprocessing.Queue[list[int]] = multiprocessing.Queue()
        _reserve_many(path, 20, local)
        thread_starts.append(local.get())

    threads = [threading.Thread(target=in_thread) for _ in range(3)]
    for worker in (*processes, *threads):
        worker.start()
    starts = [queue.get(timeout=30) for _ in processes]
    for worker in (*processes, *threads):
        worker.join(timeout=30)
    every = sorted(s for group in (*starts, *thread_starts) for s in group)
    assert len(every) == 100
    gaps = [b - a for a, b in itertools.pairwise(every)]
    assert min(gaps) >= 50_000  # never two slots in one interval


def test_admission_keeps_any_rolling_window_at_the_limit_however_wake_ups_bunch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from vendorflow.http.ratelimit import FileSlotStore, _admit_log

    assert _admit_log([], 1_000_000, 1_000_000, 2) == ([1_000_000], 0.0)
    assert _admit_log([100, 200], 1_000_150, 1_000_000, 2) == ([200, 1_000_150], 0.0)  # 100 left the window
    log, wait = _admit_log([500_000, 600_000], 1_000_000, 1_000_000, 2)
    assert log == [500_000, 600_000] and wait == pytest.approx(0.5)
    now = [10**15]
    store = FileSlotStore(tmp_path / "b.next", clock=lambda: now[0])
    assert [store.admit(1_000_000, 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert store.admit(1_000_000, 3) == pytest.approx(1.0)  # a 4th send in the same instant waits a window
    now[0] += 1_000_000_001  # a window later (in ns) the log has room again
    assert store.admit(1_000_000, 3) == 0.0
