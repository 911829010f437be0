"""Recomendo: PredictionIO's event model and queries behind a JWT gateway.

Four services, each with its own base URL (``auth_url``, ``client_url``,
``events_url``, ``predictions_url``; or one ``host`` for all four), ``/v1/...``
appended. The JWT from ``POST /v1/auth`` lives one hour and "should be
internally stored until expiration": it is cached per credential in the shared
token store (every task and worker process of a machine, or Redis), treated as
expired ``token_leeway_seconds`` early, and replaced once after a 401.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from vendorflow.errors import VendorAPIError, VendorResponseError
from vendorflow.hook import VendorHook
from vendorflow.http.auth import BearerAuth, JWTLogin, jwt_lifetime
from vendorflow.http.client import VendorClient, decode_json
from vendorflow.http.ratelimit import budget_key, shared_limiter
from vendorflow.http.retry import RetryPolicy
from vendorflow.vendors.recomendo.form import FORM

# The production services: the connection form's defaults of the four URL extras.
SERVICES: dict[str, str] = {
    name: FORM["conn-fields"][name]["schema"]["default"]
    for name in ("auth_url", "client_url", "events_url", "predictions_url")
}
DEFAULT_TOKEN_LIFETIME = 3600.0
DEFAULT_TRAINING_INTERVAL = 1800.0


def token_lifetime(token: str, now: float | None = None) -> float:
    """Seconds the token stays valid: its ``exp`` claim when present, else the documented hour."""
    return jwt_lifetime(token, DEFAULT_TOKEN_LIFETIME, now)


@dataclass(frozen=True)
class EventOutcome:
    """One event's fate: ``event_id`` when Recomendo accepted it (201); ``error`` when it refused
    it (a 4xx: the event itself is wrong); ``failure`` when sending failed for good (retries ran
    out, a malformed answer); neither when it was not sent because another event had failed."""

    event: Mapping[str, Any]
    event_id: str | None = None
    error: str | None = None
    status: int | None = None
    failure: Exception | None = None

    @property
    def accepted(self) -> bool:
        return self.event_id is not None

    @property
    def rejected(self) -> bool:
        return self.error is not None


class TrainingRefused(VendorAPIError):
    """Recomendo answered 429 to ``/v1/train``: a training was requested less than 30 minutes ago."""

    def __init__(self, endpoint: str, message: str, retry_after: float | None) -> None:
        super().__init__("Recomendo", endpoint, 429, message)
        self.retry_after = retry_after


class RecomendoHook(VendorHook):
    """Usage, events, training requests and predictions.

    Connection: ``login`` the client id, ``password`` the client secret;
    ``host`` optional (one base URL for all four services); extras
    ``auth_url``, ``client_url``, ``events_url``, ``predictions_url``,
    ``requests_per_second`` (20, shared by every task and worker of the
    credential), ``concurrency`` (events in flight, 8), ``token_leeway_seconds``
    (100: the vendor's own plugin keeps a one-hour token 3,500 s),
    ``training_interval_seconds`` (1800), ``training_margin_seconds`` (5),
    ``quota_warning_share`` (0.1), ``usage_poll_seconds`` (5) and ``month_end_wait_seconds`` (900):
    how often and how long the month-end capture reads the usage report, waiting for the month to roll over.
    """

    conn_name_attr = "recomendo_conn_id"
    default_conn_name = "recomendo_default"
    conn_type = "recomendo"
    hook_name = "Recomendo"
    vendor_name = "Recomendo"

    # -- configuration ------------------------------------------------------------------

    def service_url(self, name: str) -> str:
        explicit = self.extra_str(name, None)  # the form's defaults are the production services
        if explicit:
            return self.base_url(explicit)
        if self.connection.host:
            return self.base_url()
        return SERVICES[name]

    @cached_property
    def client_id(self) -> str:
        return self.secret("login", "Recomendo client id")

    @property
    def account_key(self) -> str:
        """A stable, secret-free name of the account (its training window, its token, its budget)."""
        return budget_key("recomendo", f"{self.service_url('client_url')}\0{self.client_id}")

    @property
    def training_interval(self) -> float:
        return float(self.extra_float("training_interval_seconds") or DEFAULT_TRAINING_INTERVAL)

    @property
    def training_margin(self) -> float:
        value = self.extras.get("training_margin_seconds")
        if value in (None, ""):
            return float(self.form_default("training_margin_seconds"))
        try:
            margin = float(value)
        except (TypeError, ValueError):
            raise self.config_error(f"extra 'training_margin_seconds' must be a number, not {value!r}") from None
        if margin < 0:
            raise self.config_error("extra 'training_margin_seconds' must not be negative")
        return margin

    @property
    def quota_warning_share(self) -> float:
        share = self.extra_float("quota_warning_share", minimum=-1e-12)
        if share is None or share > 1:
            raise self.config_error(f"extra 'quota_warning_share' must be between 0 and 1, not {share!r}")
        return share

    @property
    def usage_poll_seconds(self) -> float:
        return self.extra_float("usage_poll_seconds", minimum=0.01) or 0.0

    @property
    def month_end_wait_seconds(self) -> float:
        return self.extra_float("month_end_wait_seconds", minimum=-1e-12) or 0.0

    # -- HTTP -------------------------------------------------------------------------

    @property
    def token_leeway(self) -> float:
        return self.extra_float("token_leeway_seconds", minimum=-1e-12) or 0.0

    def token_source(self) -> JWTLogin:
        """``POST /v1/auth`` on ``auth_url`` with Basic ``client_id:secret``; the JWT is cached under the
        whole credential, hashed: a changed secret must not reuse the old secret's token."""
        secret = self.secret("password", "Recomendo client secret")
        auth_url = self.service_url("auth_url")
        key = budget_key("auth", "\0".join([auth_url, self.client_id, secret]))
        return JWTLogin(
            key,
            "/v1/auth",
            (self.client_id, secret),
            base_url=auth_url,
            early=self.token_leeway,
            default_lifetime=DEFAULT_TOKEN_LIFETIME,
        )

    def build_client(self) -> VendorClient:
        secret = self.secret("password", "Recomendo client secret")
        rps = self.extra_float("requests_per_second")
        return VendorClient(
            vendor=self.vendor_name,
            base_url=self.service_url("client_url"),
            auth=BearerAuth(self.token_source()),
            limiter=shared_limiter("recomendo", f"{self.service_url('client_url')}\0{self.client_id}", rps),
            retry=self.retry_policy(),
            timeout=self.timeout(),
            request_deadline=self.request_deadline(),
            headers={"Accept": "application/json", "Accept-Encoding": "gzip", "Content-Type": "application/json"},
            pool_size=self.concurrency * 2,
            secrets=[secret],
        )

    def _json(self, method: str, path: str, service: str, body: Any = None, **kwargs: Any) -> Any:
        response = self.client.request(
            method, path, base_url=self.service_url(service), data=None if body is None else json.dumps(body), **kwargs
        )
        return decode_json(response, self.vendor_name, self.client.describe(method, path))

    def _payload(self, body: Any, endpoint: str) -> Any:
        if not isinstance(body, dict) or body.get("success") is False:
            raise VendorResponseError(
                self.vendor_name, endpoint, f"expected {{'success': true, 'payload': ...}}, got {str(body)[:200]!r}"
            )
        return body.get("payload")

    # -- endpoints ----------------------------------------------------------------------

    def usage(self) -> dict[str, Any]:
        """``GET /v1/usage``: this month's report (``usagePlan``, ``startDate``, ``endDate``, ``usages``)."""
        payload = self._payload(self._json("GET", "/v1/usage", "client_url"), "GET /v1/usage")
        if not isinstance(payload, dict) or not isinstance(payload.get("usages"), list):
            raise VendorResponseError(self.vendor_name, "GET /v1/usage", "payload.usages is not a list")
        return payload

    def send_event(self, event: Mapping[str, Any]) -> str:
        """``POST /v1/events.json``: one event; returns the ``eventId`` of the 201 answer."""
        body = self._json("POST", "/v1/events.json", "events_url", dict(event))
        event_id = body.get("eventId") if isinstance(body, dict) else None
        if not isinstance(event_id, str) or not event_id:
            raise VendorResponseError(
                self.vendor_name, "POST /v1/events.json", f"no eventId in the answer: {str(body)[:200]!r}"
            )
        return event_id

    def send_events(
        self,
        events: Iterable[Mapping[str, Any]],
        *,
        concurrency: int | None = None,
        on_outcome: Callable[[EventOutcome], None] | None = None,
    ) -> Iterator[EventOutcome]:
        """Send each event in its own request, up to ``concurrency`` at once under the shared budget.

        Every outcome comes back, in input order, even after a failure: the
        events accepted while others failed must still be recorded, or a rerun
        would send them again. A 4xx (a rejected event) is an outcome with
        ``error``. The first failure that retries could not cure stops further
        sending and is raised once every outcome has been yielded.
        """
        import threading

        from vendorflow.errors import VendorflowError
        from vendorflow.http.concurrency import bounded_map

        failed = threading.Event()

        def send(event: Mapping[str, Any]) -> EventOutcome:
            if failed.is_set():
                return EventOutcome(event)
            try:
                return EventOutcome(event, event_id=self.send_event(event))
            except VendorAPIError as exc:
                if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (401, 429):
                    return EventOutcome(event, error=exc.vendor_message, status=exc.status)
                failed.set()
                return EventOutcome(event, status=exc.status, failure=exc)
            except VendorflowError as exc:
                failed.set()
                return EventOutcome(event, failure=exc)

        first_failure: Exception | None = None
        for outcome in bounded_map(send, events, concurrency or self.concurrency):
            first_failure = first_failure or outcome.failure
            if on_outcome:
                on_outcome(outcome)
            yield outcome
        if first_failure is not None:
            raise first_failure

    def train(self) -> dict[str, Any]:
        """``POST /v1/train``, sent once: never retried, since a retry could be a second training
        inside the 30-minute window. A 429 raises :class:`TrainingRefused`. Call it only through
        :class:`~vendorflow.vendors.recomendo.training.TrainingGuard`."""
        endpoint = "POST /v1/train"
        try:
            response = self.client.request(
                "POST", "/v1/train", base_url=self.service_url("client_url"), retry=RetryPolicy(attempts=1)
            )
        except VendorAPIError as exc:
            if exc.status == 429:
                raise TrainingRefused(endpoint, exc.vendor_message, None) from None
            raise
        body = decode_json(response, self.vendor_name, endpoint)
        self._payload(body, endpoint)
        return body

    def query(self, query: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/queries.json`` (e.g. ``{"user": "1"}``): ``{"itemScores": [...]}``. A 429 means the
        monthly quota is exhausted, so it is not retried."""
        body = self._json("POST", "/v1/queries.json", "predictions_url", dict(query), retry=RetryPolicy(attempts=1))
        if not isinstance(body, dict) or not isinstance(body.get("itemScores"), list):
            raise VendorResponseError(self.vendor_name, "POST /v1/queries.json", "itemScores is not a list")
        return body

    def ping(self) -> str:
        usage = self.usage()
        rows = usage.get("usages") or []
        remaining = rows[-1].get("remainingQuota") if rows and isinstance(rows[-1], dict) else "?"
        plan = usage.get("usagePlan", "?")
        return f"Connected to Recomendo as client {self.client_id}: plan {plan}, {remaining} of this month's quota left"


HOOK = RecomendoHook
