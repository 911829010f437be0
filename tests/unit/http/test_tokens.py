"""Tokens: fetched once per lifetime across threads and processes, refreshed once after a 401."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

from vendorflow.http.tokens import FileTokenStore, Token, TokenManager


def test_token_validity_respects_leeway() -> None:
    token = Token("v", expires_at=1000.0)
    assert token.valid(leeway=60, now=900)
    assert not token.valid(leeway=60, now=950)
    assert "v" not in repr(token)


def test_one_fetch_serves_many_threads(tmp_path: Path) -> None:
    fetches = []

    def fetch() -> tuple[str, float]:
        fetches.append(1)
        return f"token-{len(fetches)}", 3600

    manager = TokenManager("cred", fetch, store=FileTokenStore(tmp_path))
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(manager.get())) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fetches) == 1 and set(results) == {"token-1"}
    # A second manager (another task, same credential) reuses the stored token.
    other = TokenManager("cred", fetch, store=FileTokenStore(tmp_path))
    assert other.get() == "token-1" and len(fetches) == 1
    assert (tmp_path / "cred.json").stat().st_mode & 0o777 == 0o600


def test_expired_tokens_are_refetched(tmp_path: Path) -> None:
    lifetimes = iter([30.0, 3600.0])  # the first is inside the 60 s leeway: stale at once
    manager = TokenManager("c", lambda: ("t", next(lifetimes)), store=FileTokenStore(tmp_path))
    manager.get()
    manager.get()
    assert manager.fetches == 2


def test_a_token_lifetime_counts_from_the_question_not_the_slow_answer(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import vendorflow.http.tokens as tokens

    clock = iter([1000.0, 1000.0])  # asked at 1000; the answer takes 5 s to arrive

    def fetch() -> tuple[str, float]:
        monkeypatch.setattr(tokens.time, "time", lambda: 1005.0)
        return "t", 100.0  # the vendor issued it somewhere in between

    monkeypatch.setattr(tokens.time, "time", lambda: next(clock))
    manager = TokenManager("c", fetch, store=FileTokenStore(tmp_path))
    manager.get()
    assert manager._memory is not None and manager._memory.expires_at == 1100.0  # not 1105


def test_invalidate_forgets_only_the_token_that_failed(tmp_path: Path) -> None:
    values = iter(["first", "second", "third"])
    manager = TokenManager("c", lambda: (next(values), 3600), store=FileTokenStore(tmp_path))
    assert manager.get() == "first"
    manager.invalidate("first")
    assert manager.get() == "second"
    manager.invalidate("first")  # a late 401 for the old token must not throw the new one away
    assert manager.get() == "second" and manager.fetches == 2


def _get_token(directory: str, out: multiprocessing.Queue[tuple[str, int]]) -> None:
    counter = Path(directory) / "fetch-count"

    def fetch() -> tuple[str, float]:
        with open(counter, "a") as handle:
            handle.write("x")
        return "shared-token", 3600

    manager = TokenManager("proc", fetch, store=FileTokenStore(Path(directory) / "tokens"))
    out.put((manager.get(), manager.fetches))


def test_ten_processes_make_one_token_request(tmp_path: Path) -> None:
    queue: multiprocessing.Queue[tuple[str, int]] = multiprocessing.Queue()
    processes = [multiprocessing.Process(target=_get_token, args=(str(tmp_path), queue)) for _ in range(10)]
    for p in processes:
        p.start()
    answers = [queue.get(timeout=30) for _ in processes]
    for p in processes:
        p.join(timeout=30)
    assert {token for token, _ in answers} == {"shared-token"}
    assert (tmp_path / "fetch-count").read_text() == "x"
