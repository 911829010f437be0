"""Allyy: the customer-data and prediction platform (OAuth2 client credentials, JSON envelopes).

Every answer is ``{"meta": {"errors", "validation", "info"}, "data"}``; a
non-empty ``meta.errors`` or ``meta.validation`` is a failure whatever the
HTTP status, and its messages are the exception's message. The token is
cached (per client id, shared by processes) until shortly before it expires
and replaced once after a 401.

Allyy does not document the upload request body. This project fixes it as
``multipart/form-data`` with one part named ``file``; everything about that
guess lives in :data:`UPLOAD_WIRE`, :data:`FILE_PART`, :data:`UPLOAD_STATUS`
and the two path templates below, so a correction is one change here.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from vendorflow.errors import VendorAPIError, VendorResponseError
from vendorflow.hook import VendorHook
from vendorflow.http.auth import BearerAuth, OAuth2ClientCredentials
from vendorflow.http.client import VendorClient, decode_json
from vendorflow.http.paginate import Fetch, OffsetPaginator, Page, walk_pages
from vendorflow.http.ratelimit import shared_limiter
from vendorflow.http.records import Records, joined
from vendorflow.http.retry import RetryPolicy

log = logging.getLogger(__name__)

UploadFormat = Literal["csv", "json"]
UploadState = Literal["processing", "finished", "failed"]

# --- the upload wire format: the one place that knows it --------------------------------


@dataclass(frozen=True)
class UploadWire:
    """How a file of one format travels: its path segment, the file part's content type and file suffix."""

    segment: str
    content_type: str
    suffix: str


UPLOAD_WIRE: dict[str, UploadWire] = {
    "csv": UploadWire("csv", "text/csv; charset=utf-8", ".csv"),  # a header row, then one line per record
    "json": UploadWire("json", "application/json", ".json"),  # one JSON array of objects
}
FILE_PART = "file"
UPLOAD_PATH = "/api/data/v1.0/customer/{customer}/dataset/{data_set}/datasource/{segment}/{datasource}/upload"
UPLOADS_PATH = "/api/data/v1.0/customer/{customer}/dataset/{data_set}/DataSource/{datasource}/upload"  # sic: DataSource
# The integer statuses are not documented publicly; this is what the project assumes.
UPLOAD_STATUS: dict[int, UploadState] = {0: "processing", 1: "processing", 2: "finished", 3: "failed"}

MODELS_PATH = "/api/model/v1.0/customer/{customer}/model_v2_1"
TOKEN_PATH = "/api/authentication/connect/token"


def upload_state(upload: Mapping[str, Any]) -> UploadState:
    """``processing``, ``finished`` or ``failed``: an unknown status is still processing, unless errors
    were reported."""
    errors = (upload.get("insertionExceptions") or {}).get("errors") or []
    state = UPLOAD_STATUS.get(upload.get("status"), "processing")  # type: ignore[arg-type]
    if state == "finished" and errors:
        return "failed"
    return state


def upload_messages(upload: Mapping[str, Any]) -> list[str]:
    """Allyy's own words about an upload: insertion errors first, then warnings."""
    exceptions = upload.get("insertionExceptions") or {}
    found = [str(e) for e in exceptions.get("errors") or []]
    found += [f"warning: {w}" for w in [*(exceptions.get("warnings") or []), *(upload.get("warnings") or [])]]
    return found


class MultipartFile:
    """A ``multipart/form-data`` body with one file part, streamed from disk.

    Iterable and sized, so ``requests`` sends it with a ``Content-Length`` and
    never holds the file in memory; iterating again (a retry) reopens the file.
    """

    def __init__(self, path: Path, *, field: str, filename: str, content_type: str, chunk_size: int = 1 << 20) -> None:
        self.path = path
        self.chunk_size = chunk_size
        self.boundary = f"vendorflow-{uuid.uuid4().hex}"
        self.head = (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.file_size = path.stat().st_size

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return len(self.head) + self.file_size + len(self.tail)

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        with self.path.open("rb") as handle:
            while chunk := handle.read(self.chunk_size):
                yield chunk
        yield self.tail


# --- the hook -----------------------------------------------------------------------------


class AllyyHook(VendorHook):
    """Models and datasource uploads of one Allyy customer.

    Connection: ``host`` (``https://app.allyy.io``), ``login`` the client id,
    ``password`` the client secret; extras ``customer_id`` (required),
    ``token_url`` (host + ``/api/authentication/connect/token``), ``scope``
    (``allyy_api``), ``requests_per_second`` (10), ``page_size`` (100),
    ``token_leeway_seconds`` (60) and the common ones.
    """

    conn_name_attr = "allyy_conn_id"
    default_conn_name = "allyy_default"
    conn_type = "allyy"
    hook_name = "Allyy"
    vendor_name = "Allyy"
    default_host = "https://app.allyy.io"
    upload_reconcile_window: ClassVar[timedelta] = timedelta(seconds=5)

    # -- configuration ---------------------------------------------------------------------

    @property
    def customer_id(self) -> str:
        """The customer id as one URL path segment (escaped: a "/" or "?" in it cannot change the path)."""
        return quote(str(self.extra_str("customer_id", required=True)).strip(), safe="")

    @property
    def token_url(self) -> str:
        return self.extra_str("token_url") or self.base_url() + TOKEN_PATH

    @property
    def page_size(self) -> int:
        return self.extra_int("page_size")

    def build_client(self) -> VendorClient:
        client_id = self.secret("login", "Allyy client id")
        client_secret = self.secret("password", "Allyy client secret")
        customer_id = self.customer_id  # fail on a misconfigured connection before any request
        scope = self.extra_str("scope") or "allyy_api"
        token_url = self.token_url
        rps = self.extra_float("requests_per_second")
        key = "allyy-" + hashlib.sha256(f"{token_url}|{client_id}|{scope}".encode()).hexdigest()[:24]
        grant = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "scope": scope,
        }
        leeway = self.extra_float("token_leeway_seconds", minimum=-1) or 0.0
        return VendorClient(
            vendor=self.vendor_name,
            base_url=self.base_url(),
            auth=BearerAuth(OAuth2ClientCredentials(key, token_url, grant, leeway=leeway)),
            limiter=shared_limiter("allyy", f"{client_id}|{customer_id}", rps),
            retry=self.retry_policy(),
            timeout=self.timeout(),
            request_deadline=self.request_deadline(),
            headers={"Accept": "application/json, text/plain"},
            pool_size=self.concurrency * 2,
            secrets=[client_secret],
        )

    # -- the envelope ------------------------------------------------------------------------

    def _envelope(
        self, method: str, path: str, params: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        endpoint = self.client.describe(method, path, params)
        response = self.client.request(method, path, params=dict(params or {}) or None, **kwargs)
        body = decode_json(response, self.vendor_name, endpoint)
        if not isinstance(body, Mapping) or not isinstance(body.get("meta"), Mapping) or "data" not in body:
            shape = sorted(body) if isinstance(body, Mapping) else type(body).__name__
            raise VendorResponseError(self.vendor_name, endpoint, f"expected the envelope {{meta, data}}, got {shape}")
        problems = envelope_problems(body)
        if problems:
            raise VendorAPIError(self.vendor_name, endpoint, response.status_code, "; ".join(problems))
        return dict(body)

    def _object(self, method: str, path: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        body = self._envelope(method, path, params, **kwargs)
        if not isinstance(body["data"], Mapping):
            raise VendorResponseError(
                self.vendor_name,
                self.client.describe(method, path, params),
                f"data is {type(body['data']).__name__}, not an object",
            )
        return dict(body["data"])

    def _pages(
        self, path: str, params: Mapping[str, Any] | None = None, *, take: int | None = None
    ) -> Iterator[Records]:
        """Every page of a take/skip listing, until ``totalItemsCount`` records have come."""
        paginator = OffsetPaginator(take=take or self.page_size, total_records_key="totalItemsCount")
        return walk_pages(self._envelope_page(path), paginator, vendor=self.vendor_name, params=params)

    def _envelope_page(self, path: str) -> Fetch:
        def fetch(query: dict[str, Any]) -> Page:
            body = self._envelope("GET", path, query)
            records = body["data"]
            endpoint = self.client.describe("GET", path, query)
            if not isinstance(records, list) or not all(isinstance(r, Mapping) for r in records):
                raise VendorResponseError(self.vendor_name, endpoint, "data is not a list of objects")
            return Page(records, body, None, endpoint)

        return fetch

    # -- models ------------------------------------------------------------------------------

    def models_pages(self) -> Iterator[Records]:
        return self._pages(MODELS_PATH.format(customer=self.customer_id))

    def models(self) -> Records:
        return joined(self.models_pages())

    def model(self, model_id: str) -> dict[str, Any]:
        return self._object("GET", f"{MODELS_PATH.format(customer=self.customer_id)}/{model_id}")

    # -- uploads -----------------------------------------------------------------------------

    def upload_path(self, data_set_id: str, datasource_id: str, fmt: UploadFormat) -> str:
        wire = self._wire(fmt)
        return UPLOAD_PATH.format(
            customer=self.customer_id, data_set=data_set_id, segment=wire.segment, datasource=datasource_id
        )

    @staticmethod
    def _wire(fmt: str) -> UploadWire:
        if fmt not in UPLOAD_WIRE:
            raise ValueError(f"Allyy upload format must be one of {sorted(UPLOAD_WIRE)}, not {fmt!r}")
        return UPLOAD_WIRE[fmt]

    def upload_file(
        self, data_set_id: str, datasource_id: str, fmt: UploadFormat, path: Path, *, filename: str | None = None
    ) -> dict[str, Any]:
        """Upload a CSV or JSON file to a datasource; returns Allyy's upload object (status processing, usually).

        The file is streamed. An upload is not idempotent: after a dropped
        connection, a timeout or a 5xx the file may have arrived although the
        answer did not, so before sending it again the datasource's uploads
        since the first attempt are searched for one of the same size. A 429
        is safe to repeat; any other 4xx fails at once with Allyy's messages.
        """
        wire = self._wire(fmt)
        api_path = self.upload_path(data_set_id, datasource_id, fmt)
        body = MultipartFile(path, field=FILE_PART, filename=filename or path.name, content_type=wire.content_type)
        policy = self.retry_policy()
        once = RetryPolicy(attempts=1, initial=policy.initial, maximum=policy.maximum, sleep=policy.sleep)
        since = datetime.now(timezone.utc) - self.upload_reconcile_window
        for attempt in range(1, policy.attempts + 1):
            try:
                return self._object(
                    "POST", api_path, data=body, headers={"Content-Type": body.content_type}, retry=once
                )
            except VendorAPIError as exc:
                retryable = exc.status is None or exc.status == 429 or exc.status >= 500
                if not retryable or attempt == policy.attempts:
                    raise
                if exc.status != 429:
                    arrived = self.find_upload(
                        data_set_id, datasource_id, size_bytes=body.file_size, created_after=since
                    )
                    if arrived is not None:
                        log.warning(
                            "Allyy upload %s arrived although the answer was lost (%s); not sending it again",
                            arrived.get("id"),
                            exc.vendor_message,
                        )
                        return arrived
                wait = policy.wait_seconds(attempt, None)
                log.warning("%s; upload attempt %d of %d failed, next in %.1f s", exc, attempt, policy.attempts, wait)
                policy.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def upload_pages(
        self,
        data_set_id: str,
        datasource_id: str,
        *,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        include_reverted: bool | None = None,
    ) -> Iterator[Records]:
        """The datasource's uploads, newest first, page by page (take/skip)."""
        params: dict[str, Any] = {}
        if include_reverted is not None:
            params["includeReverted"] = str(include_reverted).lower()
        if created_after is not None:
            params["createdGreater"] = _instant(created_after)
        if created_before is not None:
            params["createdLess"] = _instant(created_before)
        path = UPLOADS_PATH.format(customer=self.customer_id, data_set=data_set_id, datasource=datasource_id)
        return self._pages(path, params)

    def uploads(self, data_set_id: str, datasource_id: str, **filters: Any) -> Records:
        return joined(self.upload_pages(data_set_id, datasource_id, **filters))

    def find_upload(
        self,
        data_set_id: str,
        datasource_id: str,
        *,
        upload_id: str | None = None,
        size_bytes: int | None = None,
        created_after: datetime | None = None,
    ) -> dict[str, Any] | None:
        for page in self.upload_pages(data_set_id, datasource_id, created_after=created_after):
            for upload in page:
                if (upload_id is None or upload.get("id") == upload_id) and (
                    size_bytes is None or upload.get("sizeBytes") == size_bytes
                ):
                    return dict(upload)
        return None

    def upload_status(
        self, data_set_id: str, datasource_id: str, upload_id: str, *, created_after: datetime | None = None
    ) -> dict[str, Any]:
        """The upload object as ``Get datasource uploads`` lists it now."""
        found = self.find_upload(data_set_id, datasource_id, upload_id=upload_id, created_after=created_after)
        if found is None:
            path = UPLOADS_PATH.format(customer=self.customer_id, data_set=data_set_id, datasource=datasource_id)
            raise VendorResponseError(
                self.vendor_name, f"GET {path}", f"upload {upload_id} is not among the datasource's uploads"
            )
        return found

    # -- connection test -----------------------------------------------------------------------

    def ping(self) -> str:
        page = next(self._pages(MODELS_PATH.format(customer=self.customer_id), take=1))
        models = page.total_records if page.total_records is not None else len(page)
        return f"Connected to Allyy: customer {self.customer_id} has {models} models"


def envelope_problems(body: Mapping[str, Any]) -> list[str]:
    """``meta.errors`` and ``meta.validation`` as readable lines."""
    meta = body.get("meta") or {}
    lines = []
    for error in meta.get("errors") or []:
        if isinstance(error, Mapping):
            lines.append(": ".join(str(error[k]) for k in ("code", "message") if error.get(k)) or "error")
        else:
            lines.append(str(error))
    for problem in meta.get("validation") or []:
        if isinstance(problem, Mapping):
            lines.append(": ".join(str(problem[k]) for k in ("property", "message") if problem.get(k)) or "invalid")
        else:
            lines.append(str(problem))
    return lines


def _instant(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


HOOK = AllyyHook
