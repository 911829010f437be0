"""The vendor-independent half of the sandbox: request log, per-token rate
limits, latency and fault injection, as one ASGI middleware in front of every
vendor app.

Faults are queued with ``POST /_sandbox/faults`` and consumed by matching
requests (vendor, optional path prefix, optional method, optional ``query``
substring, ``count`` times after skipping ``after`` matches):

- ``status``: answer ``status`` (429 or 5xx) with an optional ``Retry-After``;
- ``drop``: send the headers and half the body, then close the connection;
- ``slow``: wait ``delay`` seconds before answering normally;
- ``malformed``: answer 200 with a broken body, ``variant`` one of ``html``,
  ``xml``, ``truncated``, ``wrong_type`` (``field`` becomes a string),
  ``missing_key`` (``field`` removed), ``not_a_list``, ``duplicate`` (the
  first record of the first list is served twice), ``empty`` (every list of
  records served empty, the envelope and headers kept), ``empty_list`` (the
  body is ``[]``), ``extra_field`` (every record gets ``field`` with a value it
  never had), ``renamed`` (``field`` renamed ``<field>_v2`` in every record);
- ``echo``: answer ``status`` (400 by default) with an error body that echoes
  the request's headers and query string, as some gateways do (tokens included);
- ``trickle``: send the real answer ``chunk`` bytes at a time, ``delay`` seconds apart.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# --- XML for vendors that speak it (Yii2-style, like Recreativ) -------------------------


def to_xml(value: Any, root: str = "response") -> str:
    def render(v: Any, tag: str) -> str:
        if isinstance(v, Mapping):
            inner = "".join(render(val, str(key)) for key, val in v.items())
        elif isinstance(v, (list, tuple)):
            inner = "".join(render(item, "item") for item in v)
        elif v is None:
            inner = ""
        elif isinstance(v, bool):
            inner = "1" if v else ""
        else:
            inner = escape(str(v))
        return f"<{tag}>{inner}</{tag}>"

    return '<?xml version="1.0" encoding="UTF-8"?>\n' + render(value, root)


# --- tenants: a second account of every vendor, with its own data and credentials ----------------

TENANTS = ("", "b")  # "": the vendor's first tenant, at its usual prefix; "b": a second one, under /b/
_TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("sandbox_tenant", default="")


def tenant() -> str:
    """The tenant the current request is for ("" for the first one)."""
    return _TENANT.get()


def salted(text: str) -> str:
    """``text`` as seeded for the current tenant: unchanged for the first, so its data stays as it was."""
    current = _TENANT.get()
    return f"{current}:{text}" if current else text


def credential_prefix(name: str = "") -> str:
    """What every credential of tenant ``name`` (default: the current one) starts with: ``sandbox`` for the
    first tenant, ``tenant<name>`` for the others, so one tenant's credentials are refused by the other."""
    name = _TENANT.get() if name == "" else name
    return f"tenant{name}" if name else "sandbox"


def tenant_prefix(prefix: str, name: str) -> str:
    """Where tenant ``name`` of a vendor usually at ``prefix`` is served."""
    return f"/{name}{prefix}" if name else prefix


def tenant_name(vendor: str, name: str) -> str:
    """The vendor's name in the control API (faults, config, stats) for tenant ``name``."""
    return f"{vendor}-{name}" if name else vendor


class TenantApp:
    """An ASGI app served for one tenant: every request runs with :func:`tenant` set to it."""

    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app, self.name = app, name
        self.sandbox_reset = getattr(app, "sandbox_reset", None)

    def __getattr__(self, name: str) -> Any:  # the wrapped app's attributes (``state``, ...)
        if name == "app":
            raise AttributeError(name)
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _TENANT.set(self.name)
        try:
            await self.app(scope, receive, send)
        finally:
            _TENANT.reset(token)


# --- state ----------------------------------------------------------------------------


@dataclass
class Fault:
    vendor: str
    kind: str  # status | drop | slow | malformed
    path: str | None = None
    method: str | None = None
    query: str | None = None  # a substring of the raw query string, e.g. "scope=campaigns"
    status: int = 503
    retry_after: float | None = None
    delay: float = 0.0
    variant: str = "html"
    field: str | None = None
    chunk: int = 16
    count: int = 1
    after: int = 0
    served: int = 0

    def matches(self, vendor: str, method: str, path: str, query: str = "") -> bool:
        return (
            self.vendor == vendor
            and (self.path is None or path.startswith(self.path))
            and (self.method is None or self.method.upper() == method)
            and (self.query is None or self.query in query)
        )


@dataclass
class Seen:
    t: float
    vendor: str
    method: str
    path: str
    query: str
    status: int = 0
    fault: str | None = None
    token: str | None = None


@dataclass
class Vendor:
    """A vendor app and how the middleware treats it."""

    name: str
    prefix: str
    app: ASGIApp
    token_of: Callable[[Scope], str | None] = lambda scope: None
    throttled: Callable[[float], tuple[int, dict[str, str], bytes]] | None = None
    config: dict[str, Any] = field(default_factory=dict)  # rate_limit (per token per second), latency_ms, ...
    defaults: dict[str, Any] = field(default_factory=dict)


class SandboxState:
    """Everything the sandbox remembers; thread-safe, reset by ``POST /_sandbox/reset``."""

    def __init__(self, vendors: list[Vendor]) -> None:
        self.vendors = {v.name: v for v in vendors}
        for vendor in vendors:
            vendor.defaults = json.loads(json.dumps(vendor.config))
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.faults: list[Fault] = []
            self.seen: deque[Seen] = deque(maxlen=200_000)
            self.windows: dict[tuple[str, str], deque[float]] = defaultdict(deque)
            self.counters: dict[str, dict[str, Any]] = defaultdict(
                lambda: {
                    "requests": 0,
                    "throttled": 0,
                    "faults": 0,
                    "by_status": defaultdict(int),
                    "by_path": defaultdict(int),
                }
            )
            for vendor in self.vendors.values():
                vendor.config.clear()
                vendor.config.update(json.loads(json.dumps(vendor.defaults)))
                reset_hook = getattr(vendor.app, "sandbox_reset", None)
                if reset_hook:
                    reset_hook()

    def vendor_for(self, path: str) -> Vendor | None:
        best = None
        for vendor in self.vendors.values():
            if path == vendor.prefix or path.startswith(vendor.prefix + "/"):
                if best is None or len(vendor.prefix) > len(best.prefix):
                    best = vendor
        return best

    def take_fault(self, vendor: str, method: str, path: str, query: str = "") -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.count > 0 and fault.matches(vendor, method, path, query):
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    fault.count -= 1
                    fault.served += 1
                    return fault
        return None

    def admit(self, vendor: Vendor, token: str | None, now: float) -> bool:
        """Sliding one-second window per token: the (limit+1)-th request inside any second is refused."""
        limit = vendor.config.get("rate_limit")
        if not limit or token is None:
            return True
        window_seconds = float(vendor.config.get("rate_window", 1.0))
        with self.lock:
            window = self.windows[(vendor.name, token)]
            while window and window[0] <= now - window_seconds:
                window.popleft()
            if len(window) >= limit:
                return False
            window.append(now)
            return True

    def record(self, seen: Seen) -> None:
        with self.lock:
            self.seen.append(seen)
            counters = self.counters[seen.vendor]
            counters["requests"] += 1
            counters["by_status"][str(seen.status)] += 1
            counters["by_path"][f"{seen.method} {seen.path}"] += 1
            if seen.fault:
                counters["faults"] += 1
            if seen.status == 429 and not seen.fault:
                counters["throttled"] += 1

    def stats(self, vendor: str | None = None) -> dict[str, Any]:
        with self.lock:
            data = {
                name: {**c, "by_status": dict(c["by_status"]), "by_path": dict(c["by_path"])}
                for name, c in self.counters.items()
            }
        return (
            data.get(vendor, {"requests": 0, "throttled": 0, "faults": 0, "by_status": {}, "by_path": {}})
            if vendor
            else data
        )

    def requests(self, vendor: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [asdict(s) for s in self.seen if vendor is None or s.vendor == vendor]


# --- the middleware -------------------------------------------------------------------


async def _send_simple(send: Send, status: int, headers: Mapping[str, str], body: bytes) -> None:
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def _first(value: Any, wanted: Callable[[Any], bool]) -> Any:
    """The first node of a JSON document (depth first, in order) that ``wanted`` accepts."""
    if wanted(value):
        return value
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for child in children:
        found = _first(child, wanted)
        if found is not None:
            return found
    return None


def _record_lists(value: Any) -> list[list[Any]]:
    """Every list of records (dicts) in a JSON document."""
    found: list[list[Any]] = []
    if isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            found.append(value)
        for item in value:
            found.extend(_record_lists(item))
    elif isinstance(value, dict):
        for item in value.values():
            found.extend(_record_lists(item))
    return found


def _echo_body(scope: Scope, status: int) -> bytes:
    """An error answer that quotes the request back, secrets and all (what some gateways do)."""
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
    query = scope.get("query_string", b"").decode("latin-1")
    echoed = "; ".join(f"{k}: {v}" for k, v in headers.items())
    return json.dumps(
        {
            "message": f"Bad request {scope['method']} {scope['path']}?{query} with headers {echoed}",
            "status": status,
            "request": {"headers": headers, "query": query},
        }
    ).encode()


def _break_body(body: bytes, fault: Fault) -> tuple[bytes, str]:
    """A broken version of a JSON body, and its content type."""
    if fault.variant == "html":
        return (
            b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>",
            "text/html",
        )
    if fault.variant == "xml":
        try:
            return to_xml(json.loads(body)).encode(), "application/json"
        except ValueError:
            return b"<response/>", "application/json"
    if fault.variant == "truncated":
        return body[: max(1, len(body) // 2)], "application/json"
    try:
        data = json.loads(body)
    except ValueError:
        return body, "application/json"
    if fault.variant == "empty_list":
        return b"[]", "application/json"
    if fault.variant in ("empty", "extra_field", "renamed"):
        for records in _record_lists(data):
            if fault.variant == "empty":
                records.clear()
                continue
            for record in records:
                if fault.variant == "extra_field":
                    record[fault.field or "surprise"] = "new in this answer"
                elif fault.field in record:
                    record[f"{fault.field}_v2"] = record.pop(fault.field)
        return json.dumps(data).encode(), "application/json"
    if fault.variant == "not_a_list":
        return json.dumps({"unexpected": data}).encode(), "application/json"
    if fault.variant == "duplicate":
        # The same record twice, as a vendor's paging bug would serve it.
        records = _first(data, lambda v: isinstance(v, list) and bool(v) and isinstance(v[0], dict))
        if records:
            records.append(dict(records[0]))
        return json.dumps(data).encode(), "application/json"

    def is_target(value: Any) -> bool:
        if not isinstance(value, dict):
            return False
        if fault.field:
            return fault.field in value
        return not any(isinstance(v, (dict, list)) for v in value.values())  # a flat record

    record = _first(data, is_target)
    if record is not None:
        key = fault.field or next(iter(record), None)
        if key is not None and key in record:
            if fault.variant == "wrong_type":
                record[key] = "not-a-" + type(record[key]).__name__
            elif fault.variant == "missing_key":
                del record[key]
    return json.dumps(data).encode(), "application/json"


class SandboxMiddleware:
    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        now = time.time()
        path: str = scope["path"]
        vendor = self.state.vendor_for(path)
        if vendor is None:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        sub_path = path[len(vendor.prefix) :] or "/"
        token = vendor.token_of(scope)
        seen = Seen(now, vendor.name, method, sub_path, scope.get("query_string", b"").decode(), token=token)
        recorded = False

        def record(status: int) -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                seen.status = status
                self.state.record(seen)

        async def tracking_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                # Recorded before the answer leaves: a client that got its answer and then asks
                # the control API what was seen always finds its request there.
                record(message["status"])
            await send(message)

        try:
            fault = self.state.take_fault(vendor.name, method, sub_path, unquote(seen.query))
            if fault is not None:
                seen.fault = fault.kind if fault.kind != "status" else f"status {fault.status}"
            if fault is not None and fault.kind == "echo":
                status = fault.status if fault.status != 503 else 400
                await _send_simple(
                    tracking_send, status, {"content-type": "application/json"}, _echo_body(scope, status)
                )
                return
            if fault is not None and fault.kind == "status":
                headers = {"content-type": "application/json"}
                if fault.retry_after is not None:
                    headers["retry-after"] = f"{fault.retry_after:g}"
                body = json.dumps({"message": "injected fault", "status": fault.status}).encode()
                await _send_simple(tracking_send, fault.status, headers, body)
                return
            if not self.state.admit(vendor, token, now):
                status, headers, body = (vendor.throttled or _default_throttled)(
                    float(vendor.config.get("rate_window", 1.0))
                )
                await _send_simple(tracking_send, status, headers, body)
                return
            latency = float(vendor.config.get("latency_ms", 0)) / 1000
            if fault is not None and fault.kind == "slow":
                latency += fault.delay
            if latency > 0:
                await asyncio.sleep(latency)
            if fault is not None and fault.kind in ("drop", "malformed", "trickle"):
                await self._mangled(scope, receive, tracking_send, fault)
                return
            await self.app(scope, receive, tracking_send)
        finally:
            record(0)  # no answer started (the app failed before answering)

    async def _mangled(self, scope: Scope, receive: Receive, send: Send, fault: Fault) -> None:
        captured: dict[str, Any] = {"status": 200, "headers": [], "body": b""}

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                captured["status"], captured["headers"] = message["status"], message.get("headers", [])
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")

        await self.app(scope, receive, capture)
        body: bytes = captured["body"]
        if fault.kind == "trickle":
            await send({"type": "http.response.start", "status": captured["status"], "headers": captured["headers"]})
            step = max(1, fault.chunk)
            for start in range(0, len(body), step):
                await send({"type": "http.response.body", "body": body[start : start + step], "more_body": True})
                await asyncio.sleep(fault.delay)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if fault.kind == "drop":
            headers = [(k, v) for k, v in captured["headers"] if k.lower() != b"content-length"]
            headers.append((b"content-length", str(max(len(body), 2)).encode()))
            await send({"type": "http.response.start", "status": captured["status"], "headers": headers})
            # Half the promised bytes, then the server closes the connection.
            try:
                await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": False})
            except RuntimeError:  # uvicorn objects to the short body, and drops the connection: the point
                pass
            return
        broken, content_type = _break_body(body, fault)
        await _send_simple(send, 200, {"content-type": content_type}, broken)


def _default_throttled(window: float) -> tuple[int, dict[str, str], bytes]:
    return 429, {"content-type": "application/json", "retry-after": f"{window:g}"}, b'{"message": "Too Many Requests"}'


def query_params(scope: Scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode(), keep_blank_values=True)


def header(scope: Scope, name: str) -> str | None:
    wanted = name.lower().encode()
    for key, value in scope.get("headers", []):
        if key.lower() == wanted:
            return value.decode("latin-1")
    return None


def bearer_token(scope: Scope) -> str | None:
    value = header(scope, "authorization") or ""
    return value[7:].strip() if value.lower().startswith("bearer ") else None
