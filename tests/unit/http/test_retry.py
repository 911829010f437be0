"""The retry policy: which failures are retried, how long it waits, and Retry-After."""

from __future__ import annotations

import email.utils

import pytest

from vendorflow.http.retry import RetryableError, RetryPolicy, parse_retry_after


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30.0)
    assert parse_retry_after(email.utils.formatdate(10, usegmt=True), now=1_000) == 0.0


def test_backoff_is_exponential_bounded_and_never_shorter_than_retry_after() -> None:
    policy = RetryPolicy(initial=1.0, maximum=8.0, retry_after_cap=30.0)
    for attempt in range(1, 10):
        wait = policy.wait_seconds(attempt, None)
        assert 0 <= wait <= min(8.0, 2 ** (attempt - 1))
    assert policy.wait_seconds(1, 5.0) >= 5.0
    assert policy.wait_seconds(1, 3600.0) == 30.0  # a silly Retry-After is capped


def test_retries_only_retryable_errors_and_reraises_at_the_end() -> None:
    slept: list[float] = []
    policy = RetryPolicy(attempts=3, initial=0.01, sleep=slept.append)
    calls = 0

    def flaky() -> None:
        nonlocal calls
        calls += 1
        raise RetryableError("HTTP 503", status=503, retry_after=0.5)

    with pytest.raises(RetryableError):
        for attempt in policy.retrying():
            with attempt:
                flaky()
    assert calls == 3
    assert len(slept) == 2 and all(s >= 0.5 for s in slept)

    calls = 0

    def broken() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("not retryable")

    with pytest.raises(ValueError):
        for attempt in policy.retrying():
            with attempt:
                broken()
    assert calls == 1


def test_a_retryable_error_keeps_its_detail_without_the_status_prefix() -> None:
    from vendorflow.http.retry import RetryableError

    error = RetryableError("HTTP 500: broken", status=500, detail="broken")
    assert str(error) == "HTTP 500: broken" and error.detail == "broken"
    assert RetryableError("connection to h:1 failed").detail == "connection to h:1 failed"
