"""Waiting for Allyy to finish processing uploads, in the triggerer instead of a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class AllyyUploadTrigger(BaseTrigger):
    """Polls ``Get datasource uploads`` until every upload is finished or failed.

    :param uploads: one dict per upload: ``key`` (the ledger key), ``data_set_id``,
        ``datasource_id``, ``upload_id`` and ``requested_at`` (ISO instant; narrows the listing).
    :param keys: every ledger key of the run, handed back in the event.
    :param poll_interval: the longest wait between rounds of status calls (1 s, 2 s, 4 s... up to it).
    :param timeout: seconds after which the wait gives up (the event says ``timeout``).

    The event's payload: ``{"status": "done"|"timeout"|"error", "uploads": {key: upload object},
    "keys": [...], "message": ...}``.
    """

    def __init__(
        self,
        *,
        conn_id: str | None,
        uploads: list[dict[str, Any]],
        keys: list[str],
        poll_interval: float = 30.0,
        timeout: float = 6 * 3600.0,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.uploads = uploads
        self.keys = keys
        self.poll_interval = poll_interval
        self.timeout = timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "uploads": self.uploads,
                "keys": self.keys,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
            },
        )

    async def _hook(self) -> Any:
        """The hook, its connection read the asynchronous way (a blocking read would stall the triggerer's loop)."""
        from vendorflow.vendors.allyy.hook import AllyyHook

        hook = AllyyHook(conn_id=self.conn_id)
        hook.__dict__["connection"] = await AllyyHook.aget_connection(hook.conn_id)
        return hook

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from asgiref.sync import sync_to_async

        from vendorflow.vendors.allyy.hook import upload_state

        try:
            hook = await self._hook()
        except Exception as exc:
            yield TriggerEvent(
                {"status": "error", "uploads": {}, "keys": self.keys, "message": f"{type(exc).__name__}: {exc}"}
            )
            return

        def status_of(upload: dict[str, Any]) -> dict[str, Any]:  # one blocking status call, off the event loop
            since = datetime.fromisoformat(upload["requested_at"]) if upload.get("requested_at") else None
            return hook.upload_status(
                upload["data_set_id"], upload["datasource_id"], upload["upload_id"], created_after=since
            )

        deadline = time.monotonic() + self.timeout
        pending = {u["key"]: u for u in self.uploads}
        done: dict[str, dict[str, Any]] = {}
        rounds = 0
        while True:
            for key, upload in list(pending.items()):
                try:
                    status = await sync_to_async(status_of)(upload)
                except Exception as exc:  # the hook already retried what is worth retrying
                    yield TriggerEvent(
                        {
                            "status": "error",
                            "uploads": done,
                            "keys": self.keys,
                            "message": f"{type(exc).__name__}: {exc}",
                        }
                    )
                    return
                if upload_state(status) != "processing":
                    done[key] = status
                    del pending[key]
            if not pending:
                yield TriggerEvent({"status": "done", "uploads": done, "keys": self.keys})
                return
            if time.monotonic() >= deadline:
                yield TriggerEvent(
                    {
                        "status": "timeout",
                        "uploads": done,
                        "keys": self.keys,
                        "message": (
                            f"{len(pending)} upload(s) still processing after {self.timeout:g} s: {sorted(pending)}"
                        ),
                    }
                )
                return
            # Small uploads finish in seconds: look again soon, then back off to poll_interval.
            wait = min(self.poll_interval, 2.0**rounds)
            rounds += 1
            self.log.info(
                "Allyy: %d upload(s) finished, %d processing; next check in %g s", len(done), len(pending), wait
            )
            await asyncio.sleep(wait)
