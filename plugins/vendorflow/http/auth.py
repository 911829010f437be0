"""How a request proves who sends it: auth objects that own their tokens.

- :class:`StaticHeaderAuth`: a fixed secret in a header (Recreativ's ``Auth-Token``).
- :class:`BearerAuth` and :class:`QueryTokenAuth`: a token in the ``Authorization``
  header or in the query string, from a :class:`~vendorflow.http.tokens.TokenManager`
  (the shared cross-process cache) and replaced once after a 401.

The token itself comes from a *token source*, which the auth object calls
through the client it is bound to (so a token request has the same rate
limit, retries, deadlines and secret-free messages as any other):

- :class:`OAuth2ClientCredentials`: ``POST`` a grant to a token endpoint, its
  fields as a form or in the query string, optionally with Basic auth
  (Footprints, Algonomy, Allyy);
- :class:`JWTLogin`: ``POST`` with Basic auth, a JWT in ``payload.token`` valid
  until its ``exp`` claim (Recomendo).

A hook only describes its source: ``BearerAuth(OAuth2ClientCredentials(...))``.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import parse_qsl, urlsplit

import requests

from vendorflow.http.tokens import DEFAULT_LEEWAY_SECONDS, TokenManager, mask, oauth2_token

if TYPE_CHECKING:
    from vendorflow.http.client import VendorClient

log = logging.getLogger(__name__)


class StaticHeaderAuth(requests.auth.AuthBase):
    """A fixed secret in a header (Recreativ's ``Auth-Token``)."""

    def __init__(self, header: str, value: str) -> None:
        self.header, self._value = header, value
        mask(value)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers[self.header] = self._value
        return request

    def __repr__(self) -> str:
        return f"StaticHeaderAuth({self.header!r})"


class TokenSource(Protocol):
    """Where a token comes from: ``key`` names the credential in the shared cache (no secret in it)."""

    key: str
    leeway: float

    def fetch(self, client: VendorClient) -> tuple[str, float]:
        """One token request: the token and its lifetime in seconds."""
        ...


class RefreshableAuth(requests.auth.AuthBase):
    """Auth whose token comes from a :class:`TokenManager` and is replaced once after a 401.

    Built on a :class:`TokenSource`, it makes its own manager and fetches through
    the client that binds it (:meth:`bind`, called by the client).
    """

    def __init__(self, tokens: TokenManager | TokenSource) -> None:
        self._client: VendorClient | None = None
        if isinstance(tokens, TokenManager):
            self.tokens, self.source = tokens, None
        else:
            self.source = tokens
            self.tokens = TokenManager(tokens.key, self._fetch, leeway=tokens.leeway)

    def bind(self, client: VendorClient) -> None:
        self._client = client

    def _fetch(self) -> tuple[str, float]:
        if self._client is None or self.source is None:
            raise RuntimeError("this auth fetches its token through a client: pass it to VendorClient(auth=...)")
        return self.source.fetch(self._client)

    def token_in(self, request: requests.PreparedRequest) -> str | None:
        raise NotImplementedError

    def refresh(self, failed: requests.PreparedRequest) -> None:
        used = self.token_in(failed)
        if used:
            self.tokens.invalidate(used)


class BearerAuth(RefreshableAuth):
    """``Authorization: Bearer <token>``."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.tokens.get()}"
        return request

    def token_in(self, request: requests.PreparedRequest) -> str | None:
        header = request.headers.get("Authorization", "")
        return header[7:] if header.startswith("Bearer ") else None


class QueryTokenAuth(RefreshableAuth):
    """The token as a query parameter (Footprints' ``access_token``). URLs carrying it are never printed."""

    def __init__(self, tokens: TokenManager | TokenSource, param: str = "access_token") -> None:
        super().__init__(tokens)
        self.param = param

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.prepare_url(request.url, {self.param: self.tokens.get()})
        return request

    def token_in(self, request: requests.PreparedRequest) -> str | None:
        return dict(parse_qsl(urlsplit(request.url or "").query)).get(self.param)


# --- token sources ------------------------------------------------------------------------


@dataclass
class OAuth2ClientCredentials:
    """An OAuth2 token request: ``grant`` (``grant_type`` and the rest) posted to ``token_url`` (a
    path under the client's base URL, or a full URL), as a form or in the query string
    (``send``), with Basic auth when ``basic`` is given. The answer is the standard
    ``access_token``/``expires_in`` object."""

    key: str
    token_url: str
    grant: Mapping[str, str]
    send: Literal["form", "query"] = "form"
    basic: tuple[str, str] | None = field(default=None, repr=False)
    default_lifetime: float = 3600.0
    leeway: float = DEFAULT_LEEWAY_SECONDS
    label: str = ""  # what the log line calls this token (never its value)

    def fetch(self, client: VendorClient) -> tuple[str, float]:
        from vendorflow.http.client import decode_json

        auth = requests.auth.HTTPBasicAuth(*self.basic) if self.basic else None
        grant = dict(self.grant)
        if self.send == "form":
            response = client.request("POST", self.token_url, data=grant, auth=auth)
            endpoint = client.describe("POST", self.token_url)
        else:
            response = client.request("POST", self.token_url, params=grant, auth=auth)
            endpoint = client.describe("POST", self.token_url, grant)
        body = decode_json(response, client.vendor, endpoint)
        token, lifetime = oauth2_token(
            body, vendor=client.vendor, endpoint=endpoint, default_lifetime=self.default_lifetime
        )
        log.info(
            "%s: new access token%s, valid %.0f s", client.vendor, f" ({self.label})" if self.label else "", lifetime
        )
        return token, lifetime

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials({self.token_url!r}, grant_type={self.grant.get('grant_type')!r})"


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, unverified (the vendor verifies it; we only read ``exp``)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def jwt_lifetime(token: str, default: float, now: float | None = None) -> float:
    """Seconds the token stays valid: its ``exp`` claim when present, else ``default``."""
    exp = jwt_claims(token).get("exp")
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        return max(0.0, float(exp) - (now if now is not None else time.time()))
    return default


@dataclass
class JWTLogin:
    """A login that answers ``{"success": true, "payload": {"token": "<JWT>"}}`` (Recomendo's
    ``POST /v1/auth`` with Basic auth on its own ``base_url``). The token is renewed ``early``
    seconds before its ``exp``, but never more than a tenth of its lifetime early, so a
    short-lived token is not renewed on every call."""

    key: str
    path: str
    basic: tuple[str, str] = field(repr=False)
    base_url: str | None = None
    early: float = 100.0
    default_lifetime: float = 3600.0
    leeway: float = 0.0  # taken off the lifetime instead (``early``)

    def fetch(self, client: VendorClient) -> tuple[str, float]:
        from vendorflow.errors import VendorResponseError
        from vendorflow.http.client import decode_json

        response = client.request(
            "POST", self.path, base_url=self.base_url, auth=requests.auth.HTTPBasicAuth(*self.basic)
        )
        endpoint = client.describe("POST", self.path)
        body = decode_json(response, client.vendor, endpoint)
        payload = body.get("payload") if isinstance(body, dict) else None
        token = payload.get("token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise VendorResponseError(client.vendor, endpoint, "no payload.token in the answer")
        lifetime = jwt_lifetime(token, self.default_lifetime)
        return token, lifetime - min(self.early, lifetime / 10)
