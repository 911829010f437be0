"""Algonomy (RichRelevance) Profile Command API: opting users out of personalisation, for good.

OAuth2 client credentials (``POST /profile-command/v1/oauth2/token``, the
credentials in the query string as documented, or in a form body), then
``PUT /profile-command/v1/{apiKey}/optOut/{userId}`` with the bearer token.
The token lives 8 hours; it is cached (shared by every task and process of
one credential) and refreshed before it expires and once after a 401. The
documented limit, 100 user id updates per second, is one budget per client
credential shared by every thread, process and worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from vendorflow.errors import VendorResponseError
from vendorflow.hook import VendorHook
from vendorflow.http.auth import BearerAuth, OAuth2ClientCredentials
from vendorflow.http.client import VendorClient, decode_json
from vendorflow.http.ratelimit import budget_key, shared_limiter
from vendorflow.vendors.algonomy.ids import user_id_problem

TOKEN_PATH = "/profile-command/v1/oauth2/token"
OPT_OUT_BODY: dict[str, Any] = {"type": "optOut", "enableOptOut": True}


@dataclass(frozen=True)
class OptOutAnswer:
    """Algonomy's acceptance of one opt-out: when, the HTTP status and the body it answered."""

    user_id: str
    status: int
    body: Any
    accepted_at: datetime


class AlgonomyHook(VendorHook):
    """Opts users out through Algonomy's Profile Command API.

    Connection: ``host`` the gateway (``https://gateway.richrelevance.com``, or
    the QA/staging gateway; tokens are valid only where issued), ``login`` the
    client id, ``password`` the client secret; extras ``api_key`` (required),
    ``requests_per_second`` (100), ``token_request`` (``query`` as documented,
    or ``form``), ``token_leeway_seconds`` (60) and the common ones
    (``concurrency``: opt-outs in flight at once, 16).
    """

    conn_name_attr = "algonomy_conn_id"
    default_conn_name = "algonomy_default"
    conn_type = "algonomy"
    hook_name = "Algonomy"
    vendor_name = "Algonomy"
    default_host = "https://gateway.richrelevance.com"
    token_requests: ClassVar[tuple[str, ...]] = ("query", "form")

    # -- configuration -------------------------------------------------------------

    @cached_property
    def client_id(self) -> str:
        return self.secret("login", "Algonomy client_id")

    @cached_property
    def client_secret(self) -> str:
        return self.secret("password", "Algonomy client_secret")

    @cached_property
    def api_key(self) -> str:
        value = self.extra_str("api_key", required=True)
        assert value is not None
        return value.strip()

    @property
    def requests_per_second(self) -> float:
        return self.extra_float("requests_per_second")

    @property
    def token_request(self) -> Literal["query", "form"]:
        value = (self.extra_str("token_request") or "query").strip().lower()
        if value not in self.token_requests:
            raise self.config_error(f"extra 'token_request' must be 'query' or 'form', not {value!r}")
        return value  # type: ignore[return-value]

    @cached_property
    def credential_key(self) -> str:
        """Names this credential's shared budget, token cache and sender lock (reveals no secret)."""
        return budget_key("algonomy", f"{self.base_url()}\0{self.client_id}")

    # -- HTTP ----------------------------------------------------------------------

    def token_source(self) -> OAuth2ClientCredentials:
        """The client-credentials grant, its fields in the query string (``token_request`` ``query``, as
        Algonomy documents) or as a form (``form``); cached under :attr:`credential_key`."""
        leeway = self.extra_float("token_leeway_seconds", minimum=-1e-9)
        grant = {"grant_type": "client_credentials", "client_id": self.client_id, "client_secret": self.client_secret}
        return OAuth2ClientCredentials(
            self.credential_key,
            TOKEN_PATH,
            grant,
            send=self.token_request,
            default_lifetime=28_800,
            leeway=60.0 if leeway is None else leeway,
        )

    def build_client(self) -> VendorClient:
        return VendorClient(
            vendor=self.vendor_name,
            base_url=self.base_url(),
            auth=BearerAuth(self.token_source()),
            limiter=shared_limiter("algonomy", f"{self.base_url()}\0{self.client_id}", self.requests_per_second),
            retry=self.retry_policy(),
            timeout=self.timeout(),
            request_deadline=self.request_deadline(),
            headers={"Accept": "application/json"},
            pool_size=self.concurrency * 2,
            secrets=[self.client_secret],
        )

    # -- the API -------------------------------------------------------------------

    def opt_out_path(self, user_id: str) -> str:
        return f"/profile-command/v1/{quote(self.api_key, safe='')}/optOut/{quote(user_id, safe='')}"

    def opt_out(self, user_id: str) -> OptOutAnswer:
        """Opt ``user_id`` out (irreversible); returns Algonomy's acceptance or raises.

        429, 5xx and dropped connections are retried (:class:`~vendorflow.http.retry.RetryPolicy`); a
        401 refreshes the token once; any other refusal, or an answer that is
        not the documented JSON object, raises, and the user counts as not
        opted out.
        """
        problem = user_id_problem(user_id)
        if problem:
            raise ValueError(f"user id {user_id!r} {problem}")
        path = self.opt_out_path(user_id)
        response = self.client.request("PUT", path, json=OPT_OUT_BODY)
        body = decode_json(response, self.vendor_name, self.client.describe("PUT", path))
        if not isinstance(body, dict):
            raise VendorResponseError(
                self.vendor_name,
                self.client.describe("PUT", path),
                f"expected a JSON object ({{}}), got {type(body).__name__}",
            )
        return OptOutAnswer(user_id, response.status_code, body, datetime.now(timezone.utc))

    def ping(self) -> str:
        _ = self.api_key  # every opt-out needs it: a connection without one is not "connected"
        _, lifetime = self.token_source().fetch(
            self.client
        )  # a real token request, not the cache: the credentials are what is tested
        return (
            f"Connected to Algonomy at {self.base_url()}: client {self.client_id!r} got a token valid {lifetime:,.0f} s"
        )


HOOK = AlgonomyHook
