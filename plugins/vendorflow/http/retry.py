"""The one retry policy of every vendor call.

429, 5xx, dropped connections and timeouts are retried with bounded
exponential backoff (full jitter) that yields to the vendor's ``Retry-After``;
everything else fails at once. Built on tenacity; ``sleep`` is injectable so
tests never wait for real.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import tenacity


class RetryableError(Exception):
    """A failure worth another attempt: 429, 5xx, a dropped connection, a timeout."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None, detail: str | None = None
    ) -> None:
        super().__init__(message)
        self.detail = detail if detail is not None else message  # the message without its "HTTP <status>: "
        self.status = status
        self.retry_after = retry_after


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    initial: float = 1.0  # seconds before the first retry (before jitter)
    maximum: float = 60.0  # cap of the exponential part
    retry_after_cap: float = 300.0  # a Retry-After longer than this is cut to it
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def wait_seconds(self, attempt: int, retry_after: float | None) -> float:
        """Backoff before retry ``attempt`` (1-based): full jitter, never shorter than Retry-After."""
        backoff = random.uniform(0, min(self.maximum, self.initial * 2 ** (attempt - 1)))
        if retry_after is not None:
            backoff = max(backoff, min(retry_after, self.retry_after_cap))
        return backoff

    def retrying(self, before_sleep: Callable[[tenacity.RetryCallState], None] | None = None) -> tenacity.Retrying:
        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return self.wait_seconds(state.attempt_number, getattr(error, "retry_after", None))

        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(RetryableError),
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=wait,
            sleep=self.sleep,
            reraise=True,
            before_sleep=before_sleep,
        )
