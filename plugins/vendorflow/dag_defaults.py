"""What every vendorflow DAG shares: retries, a deadline per task, and the params of extraction runs.

Cheap at parse time (only ``airflow.sdk`` and the standard library); the one
setting read here is an environment variable, never a Variable or connection.

- ``VENDORFLOW_TASK_TIMEOUT_MINUTES``: every task's ``execution_timeout``
  (default: each DAG's own, 2 hours for extractions). A task past it is
  failed by Airflow and retried like any other failure.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.sdk import Param

DEFAULT_TASK_TIMEOUT = timedelta(hours=2)


def task_timeout(default: timedelta = DEFAULT_TASK_TIMEOUT) -> timedelta:
    """``VENDORFLOW_TASK_TIMEOUT_MINUTES`` when set (a positive number), else ``default``."""
    raw = os.environ.get("VENDORFLOW_TASK_TIMEOUT_MINUTES", "").strip()
    if not raw:
        return default
    try:
        minutes = float(raw)
    except ValueError:
        minutes = 0.0
    if not minutes > 0:
        raise ValueError(f"VENDORFLOW_TASK_TIMEOUT_MINUTES must be a positive number of minutes, not {raw!r}")
    return timedelta(minutes=minutes)


def default_args(
    *, retries: int = 3, retry_delay: timedelta = timedelta(minutes=5), timeout: timedelta = DEFAULT_TASK_TIMEOUT
) -> dict[str, Any]:
    """Retries with exponential backoff and an ``execution_timeout`` for every task of a DAG."""
    return {
        "retries": retries,
        "retry_delay": retry_delay,
        "retry_exponential_backoff": True,
        "execution_timeout": task_timeout(timeout),
    }


def extraction_params() -> dict[str, Param]:
    """The trigger form's params of every extraction DAG."""
    return {
        "accept_shrink": Param(
            False,
            type="boolean",
            title="Accept fewer rows than published",
            description=(
                "A rerun may not replace a published day with an empty batch, or with far fewer rows than it "
                "holds (the shrink guard fails validation and quarantines the batch). Tick this only when the "
                "vendor really holds fewer records now, to publish them anyway."
            ),
        ),
    }
