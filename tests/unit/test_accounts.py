"""VENDORFLOW_ACCOUNTS: parsing, validation, defaults, and the layout of several accounts' files."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from vendorflow import accounts
from vendorflow.errors import ConfigError
from vendorflow.pipeline.storage import Lake, ParquetStream


@pytest.fixture
def configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def write(document: object) -> Path:
        path = tmp_path / "accounts.json"
        path.write_text(document if isinstance(document, str) else json.dumps(document))
        monkeypatch.setenv(accounts.ENV, str(path))
        return path

    return write


def test_without_the_file_each_vendor_has_one_default_account_on_its_default_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(accounts.ENV, raising=False)
    assert [(a.name, a.conn_id) for a in accounts.of("footprints")] == [("default", "footprints_default")]
    assert not accounts.grouped("footprints")
    assert accounts.chosen("algonomy", []) == ["default"]


def test_configured_accounts_in_order_with_defaults_for_the_vendors_not_named(configure) -> None:  # type: ignore[no-untyped-def]
    configure({"footprints": {"ro": "footprints_ro", "md": {"conn_id": "footprints_md"}}})
    assert [(a.name, a.conn_id) for a in accounts.of("footprints")] == [
        ("ro", "footprints_ro"),
        ("md", "footprints_md"),
    ]
    assert accounts.grouped("footprints") and not accounts.grouped("recreativ")
    assert accounts.get("footprints", "md").conn_id == "footprints_md"
    with pytest.raises(ConfigError, match="footprints has no account 'de' \\(configured: ro, md\\)"):
        accounts.get("footprints", "de")


def test_cross_vendor_feeds_are_configured_or_the_account_of_the_same_name(configure) -> None:  # type: ignore[no-untyped-def]
    configure(
        {
            "footprints": {"ro": "fp_ro", "md": "fp_md"},
            "recomendo": {"ro": "rec_ro", "all": {"conn_id": "rec_all", "footprints": ["ro", "md", "ro"]}},
        }
    )
    assert accounts.get("recomendo", "ro").fed_by("footprints") == ("ro",)
    assert accounts.get("recomendo", "all").fed_by("footprints") == ("ro", "md")
    configure({"footprints": {"ro": "fp_ro"}, "recomendo": {"de": "rec_de"}})
    assert accounts.get("recomendo", "de").fed_by("footprints") == ()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{not json", "not valid JSON"),
        ([], "must be a JSON object"),
        ({"footprint": {"a": "x"}}, "unknown vendor 'footprint'"),
        ({"footprints": {}}, "must map at least one account"),
        ({"footprints": {"Ro": "x"}}, "'Ro' is not an account name"),
        ({"footprints": {"data": "x"}}, "are reserved"),
        ({"footprints": {"part-1": "x"}}, "not an account name"),
        ({"footprints": {"ro": "bad id!"}}, "conn_id must be an Airflow connection id"),
        ({"footprints": {"ro": 3}}, "must be a connection id, or an object with conn_id"),
        ({"recomendo": {"ro": {"conn_id": "r", "footprint": ["ro"]}}}, "unknown key 'footprint'"),
        ({"recomendo": {"ro": {"conn_id": "r", "footprints": "ro"}}}, "must be a list of footprints account names"),
        ({"recomendo": {"ro": {"conn_id": "r", "footprints": ["ro"]}}}, "which footprints does not have \\(default\\)"),
    ],
)
def test_a_malformed_file_names_the_file_and_the_entry(configure, document: object, message: str) -> None:  # type: ignore[no-untyped-def]
    path = configure(document)
    with pytest.raises(ConfigError, match=message) as raised:
        accounts.of("footprints")
    assert str(path) in str(raised.value)


def test_a_missing_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(accounts.ENV, str(tmp_path / "nowhere.json"))
    with pytest.raises(ConfigError, match="VENDORFLOW_ACCOUNTS=.*nowhere.json: cannot read the accounts file"):
        accounts.of("footprints")


def test_a_runs_accounts_param_names_configured_accounts(configure) -> None:  # type: ignore[no-untyped-def]
    configure({"algonomy": {"site_a": "a", "site_b": "b"}})
    assert accounts.chosen("algonomy", None) == ["site_a", "site_b"]
    assert accounts.chosen("algonomy", [" site_b ", "site_b"]) == ["site_b"]
    with pytest.raises(
        ConfigError, match="algonomy has no account 'site_c'; the configured accounts are site_a, site_b"
    ):
        accounts.chosen("algonomy", ["site_c"])


def _publish(lake: Lake, account: str, values: list[int]) -> str:
    schema = pa.schema([("n", pa.int64())])
    staged = lake.staging_file("v/d", "2024-03-01", f"t-{account}")
    stream = ParquetStream(staged, schema)
    stream.write(pa.record_batch([pa.array(values)], schema=schema))
    stream.close()
    return lake.publish(staged, "v/d", "2024-03-01", {"rows": len(values), "account": account}, account)


def test_accounts_files_sit_side_by_side_and_a_rerun_replaces_only_its_own(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path))
    assert _publish(lake, "default", [1, 2]).endswith("dt=2024-03-01/data.parquet")
    assert _publish(lake, "md", [3]).endswith("dt=2024-03-01/md.parquet")
    _publish(lake, "md", [4, 5, 6])
    assert lake.accounts("v/d", "2024-03-01") == ["default", "md"]
    assert lake.read_manifest("v/d", "2024-03-01")["rows"] == 2
    assert lake.read_manifest("v/d", "2024-03-01", "md")["rows"] == 3
    assert lake.partitions("v/d", "md") == ["2024-03-01"] and lake.partitions("v/d", "ro") == []
    assert lake.read_manifest("v/d", "2024-03-01", "ro") is None
