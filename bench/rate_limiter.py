"""Shared budget designs at 100 requests/s split over two processes x 8 threads: achieved rate and the busiest second.

Compares pyrate-limiter's ``Limiter`` (GCRA, burst 1, polling waits) with the
reservation scheme vendorflow uses (``vendorflow.http.ratelimit``), both with
state in a file shared by the processes. No HTTP: only the admission schedule.
Knob: ``BENCH_RL_SECONDS`` (8).
"""

from __future__ import annotations

import bisect
import multiprocessing
import os
import tempfile
import threading
import time
from pathlib import Path

RATE = 100.0


def _pyrate_limiter(path: str):  # type: ignore[no-untyped-def]
    import fcntl

    from pyrate_limiter import GCRA, Limiter, Rate, StateBucket, StateStore
    from pyrate_limiter.clocks import WallClock

    class FileStore(StateStore):  # the same flock'd file as vendorflow's, for a fair comparison
        default_clock = WallClock()

        def _op(self, fn):  # type: ignore[no-untyped-def]
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                return fn(fd)
            finally:
                os.close(fd)

        def check(self, algorithm, rates, now, weight):  # type: ignore[no-untyped-def]
            def step(fd: int):  # type: ignore[no-untyped-def]
                raw = os.pread(fd, 64, 0).decode().split()
                state = algorithm.decode(raw) if len(raw) == len(rates) else algorithm.initial(rates)
                new, decision = algorithm.step(rates, state, now, weight)
                if decision.allowed:
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, " ".join(str(int(v)) for v in new).encode(), 0)
                return decision

            return self._op(step)

        def read(self, algorithm, rates):  # type: ignore[no-untyped-def]
            def load(fd: int):  # type: ignore[no-untyped-def]
                raw = os.pread(fd, 64, 0).decode().split()
                return algorithm.decode(raw) if len(raw) == len(rates) else algorithm.initial(rates)

            return self._op(load)

        def reset(self) -> None:
            self._op(lambda fd: os.ftruncate(fd, 0))

    limit = round(RATE * 0.97 * 1000)
    bucket = StateBucket([Rate(limit, 1_000_000, burst=1)], algorithm=GCRA(), store=FileStore(), clock=WallClock())
    limiter = Limiter(bucket, buffer_ms=0)
    return lambda: limiter.try_acquire("bench", 1)


def _vendorflow(path: str):  # type: ignore[no-untyped-def]
    from vendorflow.http.ratelimit import FileSlotStore, RateLimiter

    limiter = RateLimiter("bench", RATE, store=FileSlotStore(Path(path)))
    return limiter.acquire


def _process(kind: str, path: str, seconds: float, out: multiprocessing.Queue[list[float]]) -> None:
    acquire = _pyrate_limiter(path) if kind == "pyrate-limiter" else _vendorflow(path)
    stamps: list[float] = []
    lock = threading.Lock()
    deadline = time.time() + seconds

    def work() -> None:
        while time.time() < deadline:
            acquire()
            with lock:
                stamps.append(time.time())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(stamps)


def run(kind: str, seconds: float) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "budget")
        queue: multiprocessing.Queue[list[float]] = multiprocessing.Queue()
        processes = [multiprocessing.Process(target=_process, args=(kind, path, seconds, queue)) for _ in range(2)]
        for p in processes:
            p.start()
        stamps = sorted(s for _ in processes for s in queue.get())
        for p in processes:
            p.join()
    start, end = stamps[0] + 1.0, stamps[-1] - 1.0  # steady state only
    inside = [s for s in stamps if start <= s <= end]
    rate = (len(inside) - 1) / (inside[-1] - inside[0])
    busiest = max(bisect.bisect_right(stamps, t + 1.0) - i for i, t in enumerate(stamps))
    return rate, busiest


def main() -> None:
    seconds = float(os.environ.get("BENCH_RL_SECONDS", "8"))
    print(f"budget {RATE:g}/s (97% target: {RATE * 0.97:g}/s), 2 processes x 8 threads, {seconds:g} s each")
    print(f"{'design':<16} {'achieved/s':>11} {'of allowed':>11} {'busiest 1 s':>12}")
    for kind in ("pyrate-limiter", "vendorflow"):
        rate, busiest = run(kind, seconds)
        print(f"{kind:<16} {rate:>11.2f} {rate / RATE:>10.1%} {busiest:>12}", flush=True)


if __name__ == "__main__":
    main()
