"""Footprints read by a second, independent implementation of its documented API.

Plain ``requests`` and a credential of its own (so its own rate budget); it
shares no code with the hook, the dataset declarations or the pipeline. The
integration and end-to-end tests check what vendorflow read against it.
"""

from __future__ import annotations

import time
import uuid
from datetime import date
from typing import Any

import requests


class Oracle:
    """The sandbox read with plain requests and a credential of its own: the independent view."""

    def __init__(self, conn: dict[str, Any]) -> None:
        self.host = conn["host"]
        tenant = conn["login"].split("-", 1)[0]  # "sandbox" or a second tenant's "tenantb": its credentials
        key = f"{tenant}-oracle-{uuid.uuid4().hex[:8]}"
        answer = requests.post(
            f"{self.host}/api/token",
            auth=(key, f"{tenant}-oracle"),
            data={"grant_type": "client_credentials"},
            timeout=10,
        )
        answer.raise_for_status()
        self.token = answer.json()["access_token"]

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        while True:  # the oracle has its own token, so its own budget: it waits out a 429 and asks again
            response = requests.request(method, f"{self.host}{path}", timeout=30, **kwargs)
            if response.status_code != 429:
                response.raise_for_status()
                return response
            time.sleep(float(response.headers.get("Retry-After", "1")))

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.call("GET", path, params={"access_token": self.token, **params})

    def pages(self, path: str) -> list[dict[str, Any]]:
        first = self.get(path, page=1)
        out = list(first.json())
        for page in range(2, int(first.headers["X-Total-Pages"]) + 1):
            out.extend(self.get(path, page=page).json())
        return out

    def leads(self, day: date) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = self.get(
                "/api/lead", startDate=day.isoformat(), endDate=day.isoformat(), pageSize=100, page=page
            ).json()
            if not batch:
                return out
            out.extend(batch)
            page += 1

    def codes(self, **form: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self.call(
                "POST", "/api/loyaltyCode/list", params={"access_token": self.token}, data={**form, "page": page}
            ).json()
            out.extend(body["clients"])
            if len(out) >= body["totalResults"] or not body["clients"]:
                return out
            page += 1
