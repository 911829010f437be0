"""Allyy's pure pieces without a server: configuration, the Parquet export, events, paging, the envelope, the wire
format."""

from __future__ import annotations

import csv
import email.parser
import email.policy
import io
import json
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import responses

from vendorflow.errors import ConfigError, VendorAPIError, VendorflowError
from vendorflow.http.paginate import OffsetPaginator, PaginationError
from vendorflow.pipeline.export import export_partition
from vendorflow.vendors.allyy.hook import (
    FILE_PART,
    UPLOAD_WIRE,
    MultipartFile,
    envelope_problems,
    upload_messages,
    upload_state,
)
from vendorflow.vendors.allyy.uploads import load_targets, parse_partition, partition_key, triggered_partitions

# --- configuration -------------------------------------------------------------------------------


def write_config(tmp_path: Path, uploads: Any) -> Path:
    path = tmp_path / "uploads.json"
    path.write_text(json.dumps({"uploads": uploads}))
    return path


GOOD = {"dataset": "recreativ/campaign_statistics", "dataSetId": "ds", "datasourceId": "src", "format": "csv"}


def test_the_shipped_configuration_names_declared_datasets_one_csv_one_json() -> None:
    from vendorflow import datasets

    targets = load_targets()
    assert {t.format for t in targets} == {"csv", "json"}
    for target in targets:
        assert datasets.get(target.dataset).key_name == target.dataset


@pytest.mark.parametrize(
    ("uploads", "problem"),
    [
        ({"not": "a list"}, "expected an object with an 'uploads' list"),
        ([{**GOOD, "format": "xml"}], "uploads[0]: format must be csv or json, not 'xml'"),
        ([{k: v for k, v in GOOD.items() if k != "datasourceId"}], "uploads[0] lacks datasourceId"),
        ([{**GOOD, "dataset": "campaign_statistics"}], "dataset must be '<vendor>/<dataset>'"),
        ([GOOD, GOOD], "uploads[1]: recreativ/campaign_statistics is configured twice"),
        ([{**GOOD, "columns": []}], "columns must be a non-empty list"),
    ],
)
def test_a_malformed_configuration_names_the_file_and_entry(tmp_path: Path, uploads: Any, problem: str) -> None:
    path = write_config(tmp_path, uploads)
    with pytest.raises(ConfigError) as raised:
        load_targets(path)
    assert str(path) in str(raised.value) and problem in str(raised.value)


def test_a_missing_or_broken_configuration_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is missing"):
        load_targets(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_targets(tmp_path / "bad.json")


def test_partitions_are_named_as_their_path() -> None:
    assert partition_key("recreativ/offer_statistics", date(2024, 3, 1)) == "recreativ/offer_statistics/dt=2024-03-01"
    assert parse_partition(" recreativ/offer_statistics/dt=2024-03-01 ") == ("recreativ/offer_statistics", "2024-03-01")
    assert parse_partition("recreativ/offer_statistics", "2024-03-05") == ("recreativ/offer_statistics", "2024-03-05")
    for bad in ("recreativ/offer_statistics", "recreativ/offer_statistics/2024-03-01", "../x/dt=2024-03-01"):
        with pytest.raises(ConfigError):
            parse_partition(bad)


# --- asset events ------------------------------------------------------------------------------


def event(name: str, extra: dict[str, Any]) -> Any:
    return SimpleNamespace(
        asset=SimpleNamespace(name=name, uri=f"x-vendorflow://{name}"), extra=extra, source_aliases=[]
    )


def test_triggering_events_of_configured_datasets_name_the_partitions() -> None:
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    targets = load_targets()
    events = TriggeringAssetEventsAccessor.build(
        [
            event("recreativ/campaign_statistics", {"dt": "2024-03-01", "rows": 5, "path": "/x"}),
            event("recreativ/campaigns", {"dt": "2024-03-01"}),  # not configured: ignored
            event("recreativ/offer_statistics", {"dt": "2024-03-02"}),
            event("recreativ/campaign_statistics", {"dt": "2024-03-03"}),
        ]
    )
    assert sorted(triggered_partitions(events, targets)) == [
        ("recreativ/campaign_statistics", "2024-03-01"),
        ("recreativ/campaign_statistics", "2024-03-03"),
        ("recreativ/offer_statistics", "2024-03-02"),
    ]
    assert triggered_partitions(None, targets) == []
    with pytest.raises(VendorflowError, match="carries no dt"):
        triggered_partitions(TriggeringAssetEventsAccessor.build([event("recreativ/offer_statistics", {})]), targets)


# --- Parquet to CSV / JSON ------------------------------------------------------------------------

ROWS = [
    {
        "id": 1,
        "name": "plain",
        "day": date(2024, 3, 1),
        "money": Decimal("12.3400"),
        "flag": True,
        "at": datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=timezone.utc),
        "ratio": 0.25,
    },
    {
        "id": 2,
        "name": 'comma, "quote"\nnewline',
        "day": date(2024, 3, 2),
        "money": Decimal("-0.0001"),
        "flag": False,
        "at": datetime(2024, 3, 1, 23, 59, 59, tzinfo=timezone.utc),
        "ratio": 3.5,
    },
    {"id": None, "name": None, "day": None, "money": None, "flag": None, "at": None, "ratio": None},
]
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("name", pa.string()),
        ("day", pa.date32()),
        ("money", pa.decimal128(18, 4)),
        ("flag", pa.bool_()),
        ("at", pa.timestamp("us", tz="UTC")),
        ("ratio", pa.float64()),
    ]
)
# The documented text forms, written by hand.
AS_TEXT = [
    {
        "id": "1",
        "name": "plain",
        "day": "2024-03-01",
        "money": "12.3400",
        "flag": "true",
        "at": "2024-03-01T10:00:00.123456Z",
        "ratio": "0.25",
    },
    {
        "id": "2",
        "name": 'comma, "quote"\nnewline',
        "day": "2024-03-02",
        "money": "-0.0001",
        "flag": "false",
        "at": "2024-03-01T23:59:59.000000Z",
        "ratio": "3.5",
    },
    {"id": "", "name": "", "day": "", "money": "", "flag": "", "at": "", "ratio": ""},
]
AS_JSON = [
    {
        "id": 1,
        "name": "plain",
        "day": "2024-03-01",
        "money": "12.3400",
        "flag": True,
        "at": "2024-03-01T10:00:00.123456Z",
        "ratio": 0.25,
    },
    {
        "id": 2,
        "name": 'comma, "quote"\nnewline',
        "day": "2024-03-02",
        "money": "-0.0001",
        "flag": False,
        "at": "2024-03-01T23:59:59.000000Z",
        "ratio": 3.5,
    },
    {"id": None, "name": None, "day": None, "money": None, "flag": None, "at": None, "ratio": None},
]


@pytest.fixture
def parquet(tmp_path: Path) -> Path:
    path = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS, schema=SCHEMA), path, row_group_size=2)
    return path


@pytest.mark.parametrize("batch_rows", [1, 2, 1000])
def test_csv_export_has_a_header_and_the_documented_text(parquet: Path, tmp_path: Path, batch_rows: int) -> None:
    out = tmp_path / "out.csv"
    rows, size = export_partition(parquet, out, "csv", batch_rows=batch_rows)
    assert (rows, size) == (3, out.stat().st_size)
    assert list(csv.DictReader(io.StringIO(out.read_text(), newline=""))) == AS_TEXT


@pytest.mark.parametrize("batch_rows", [1, 2, 1000])
def test_json_export_is_one_array_of_objects(parquet: Path, tmp_path: Path, batch_rows: int) -> None:
    out = tmp_path / "out.json"
    assert export_partition(parquet, out, "json", batch_rows=batch_rows)[0] == 3
    assert json.loads(out.read_text()) == AS_JSON


def test_export_keeps_the_configured_columns_in_order(parquet: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    export_partition(parquet, out, "json", columns=["money", "id"])
    assert json.loads(out.read_text()) == [{"money": r["money"], "id": r["id"]} for r in AS_JSON]
    with pytest.raises(ConfigError, match=r"columns \['nope'\] are not in the partition"):
        export_partition(parquet, out, "csv", columns=["id", "nope"])


def test_an_empty_partition_exports_a_header_or_an_empty_array(tmp_path: Path) -> None:
    empty = tmp_path / "empty.parquet"
    pq.write_table(SCHEMA.empty_table(), empty)
    export_partition(empty, tmp_path / "e.csv", "csv")
    export_partition(empty, tmp_path / "e.json", "json")
    assert (tmp_path / "e.csv").read_text() == '"id","name","day","money","flag","at","ratio"\n'
    assert json.loads((tmp_path / "e.json").read_text()) == []


# --- the wire format, statuses, the envelope -----------------------------------------------------


def test_the_multipart_body_streams_one_file_part_and_says_its_length(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * 1000)
    body = MultipartFile(
        path, field=FILE_PART, filename="x.csv", content_type=UPLOAD_WIRE["csv"].content_type, chunk_size=100
    )
    chunks = list(body)
    assert len(chunks) > 10 and len(b"".join(chunks)) == len(body)
    assert list(body) == chunks  # a retry sends it again from the start
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {body.content_type}\r\n\r\n".encode() + b"".join(chunks)
    )
    [part] = list(message.iter_parts())
    assert part.get_param("name", header="content-disposition") == "file" and part.get_filename() == "x.csv"
    assert part.get_payload(decode=True) == path.read_bytes()


def test_upload_states_and_messages() -> None:
    assert upload_state({"status": 1}) == "processing"
    assert upload_state({"status": 2}) == "finished"
    assert upload_state({"status": 3, "insertionExceptions": {"errors": ["bad row 3"]}}) == "failed"
    assert upload_state({"status": 2, "insertionExceptions": {"errors": ["bad row 3"]}}) == "failed"
    assert upload_state({"status": 99}) == "processing"  # an unknown code is not taken for success
    assert upload_messages({"insertionExceptions": {"errors": ["e1"], "warnings": ["w1"]}, "warnings": ["w2"]}) == [
        "e1",
        "warning: w1",
        "warning: w2",
    ]


def test_envelope_problems_are_readable_lines() -> None:
    body = {
        "meta": {
            "errors": [{"code": "E1", "message": "broken"}],
            "validation": [{"property": "take", "message": "too big"}],
            "info": {},
        }
    }
    assert envelope_problems(body) == ["E1: broken", "take: too big"]
    assert envelope_problems({"meta": {"errors": [], "validation": []}, "data": []}) == []


@responses.activate
def test_errors_in_a_200_envelope_fail_the_call(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from vendorflow.vendors.allyy.hook import AllyyHook

    monkeypatch.setenv("VENDORFLOW_STATE_DIR", str(tmp_path))
    monkeypatch.setenv(
        "AIRFLOW_CONN_ALLYY_DEFAULT",
        json.dumps(
            {
                "conn_type": "allyy",
                "host": "https://allyy.test",
                "login": "id",
                "password": "secret",
                "extra": {"customer_id": "c1"},
            }
        ),
    )
    responses.post(
        "https://allyy.test/api/authentication/connect/token", json={"access_token": "t", "expires_in": 3600}
    )
    responses.get(
        "https://allyy.test/api/model/v1.0/customer/c1/model_v2_1/m1",
        content_type="text/plain",
        body=json.dumps(
            {"meta": {"errors": [{"code": "Quota", "message": "plan exceeded"}], "validation": []}, "data": None}
        ),
    )
    with pytest.raises(VendorAPIError, match="HTTP 200: Quota: plan exceeded"):
        AllyyHook().model("m1")
    token_call = responses.calls[0].request
    assert token_call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "scope=allyy_api" in token_call.body and "grant_type=client_credentials" in token_call.body


# --- take/skip paging ------------------------------------------------------------------------------


def walk(paginator: OffsetPaginator, pages: list[tuple[int, int | None]]) -> list[dict[str, Any]]:
    params: dict[str, Any] = {}
    paginator.init_request(params)
    asked = []
    for size, total in pages:
        asked.append(dict(params))
        paginator.update_state(None, {"totalItemsCount": total} if total is not None else {}, [{}] * size)
        if not paginator.has_next_page:
            return asked
        paginator.update_request(params)
    raise AssertionError("the paginator did not stop")


def test_offset_paging_skips_by_what_arrived_until_the_total() -> None:
    asked = walk(OffsetPaginator(take=10, total_records_key="totalItemsCount"), [(4, 11), (4, 11), (3, 11)])
    assert asked == [{"take": 10, "skip": 0}, {"take": 10, "skip": 4}, {"take": 10, "skip": 8}]


def test_offset_paging_without_a_total_stops_on_an_empty_page() -> None:
    assert len(walk(OffsetPaginator(take=2), [(2, None), (1, None), (0, None)])) == 3


def test_an_empty_page_before_the_announced_total_is_an_error() -> None:
    with pytest.raises(PaginationError, match="empty after 2 of the 5 records"):
        walk(OffsetPaginator(take=2, total_records_key="totalItemsCount"), [(2, 5), (0, 5)])


# --- accounts ----------------------------------------------------------------------------------------


def test_upload_targets_name_their_source_and_allyy_accounts(tmp_path: Path) -> None:
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    from vendorflow.vendors.allyy.uploads import run_partitions

    config = tmp_path / "uploads.json"
    common = {"dataset": "recreativ/campaign_statistics", "dataSetId": "s", "format": "csv"}
    config.write_text(
        json.dumps(
            {
                "uploads": [
                    {**common, "datasourceId": "d-default"},
                    {**common, "datasourceId": "d-retail", "account": "retail"},
                    {**common, "datasourceId": "d-retail-2", "account": "retail", "allyyAccount": "second"},
                ]
            }
        )
    )
    targets = load_targets(config)
    assert [t.key("2024-03-01") for t in targets] == [
        "recreativ/campaign_statistics/dt=2024-03-01",  # the key it had before accounts
        "recreativ/campaign_statistics/dt=2024-03-01/retail",
        "recreativ/campaign_statistics/dt=2024-03-01/retail@second",
    ]
    events = TriggeringAssetEventsAccessor.build(
        [
            event("recreativ/campaign_statistics", {"dt": "2024-03-01", "account": "retail"}),
            event("recreativ/campaign_statistics", {"dt": "2024-03-02"}),  # before accounts: the default's
        ]
    )
    groups = run_partitions(config, events, [], None)
    assert [({d: t.datasource_id for d, t in g.items()}, w) for g, w in groups] == [
        ({"recreativ/campaign_statistics": "d-default"}, [("recreativ/campaign_statistics", "2024-03-02")]),
        ({"recreativ/campaign_statistics": "d-retail"}, [("recreativ/campaign_statistics", "2024-03-01")]),
    ]
    second = run_partitions(config, events, [], None, allyy_account="second")
    assert [w for _, w in second] == [[("recreativ/campaign_statistics", "2024-03-01")]]
    config.write_text(json.dumps({"uploads": [{**common, "datasourceId": "d", "account": "Retail"}]}))
    with pytest.raises(ConfigError, match="'Retail' is not an account name"):
        load_targets(config)
