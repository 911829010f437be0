"""The ordered, bounded thread map shared by the paging loop and the senders."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def bounded_map(fn: Callable[[T], R], items: Iterable[T], concurrency: int) -> Iterator[R]:
    """``map(fn, items)`` on up to ``concurrency`` threads, results in input order.

    At most ``concurrency`` calls are in flight and at most ``concurrency``
    results wait to be consumed, so memory stays bounded however many items
    there are. The first exception is raised to the consumer after the
    in-flight calls finish.
    """
    if concurrency <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="vendorflow") as pool:
        pending: deque[Future[R]] = deque()
        iterator = iter(items)
        try:
            for item in iterator:
                pending.append(pool.submit(fn, item))
                if len(pending) >= concurrency:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
