"""Bad configuration fails at once, before anything is sent, naming the setting, the file or the host
(never a secret): hosts, ports, numeric extras, the ledger file, Redis, the connection test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from include.sandbox.control import Sandbox
from vendorflow.errors import ConfigError, VendorAPIError
from vendorflow.http.ratelimit import FileSlotStore, shared_limiter

pytestmark = pytest.mark.reliability


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


# --- hosts and ports -------------------------------------------------------------------------------------------


def test_a_host_without_scheme_is_refused_naming_the_connection(
    monkeypatch: pytest.MonkeyPatch, state_dir: Path
) -> None:
    from vendorflow.vendors.recreativ.hook import RecreativHook

    set_conn(monkeypatch, "recreativ_default", conn_type="recreativ", host="127.0.0.1:9/recreativ/api", password="t")
    with pytest.raises(ConfigError) as error:
        _ = RecreativHook().client
    assert str(error.value) == (
        "Connection 'recreativ_default' (Recreativ): host '127.0.0.1:9/recreativ/api' has no scheme: write it as "
        "https://127.0.0.1:9/recreativ/api (or http://127.0.0.1:9/recreativ/api for a plain-HTTP sandbox or proxy)"
    )


@pytest.mark.parametrize(
    ("host", "schema", "port", "expected"),
    [
        ("http://127.0.0.1/recreativ/api", None, 18765, "http://127.0.0.1:18765/recreativ/api"),
        ("127.0.0.1/recreativ/api", "http", 18765, "http://127.0.0.1:18765/recreativ/api"),
        ("https://api.example.com:8443/v2", None, 8443, "https://api.example.com:8443/v2"),
        ("https://api.example.com", None, None, "https://api.example.com"),
    ],
)
def test_the_port_field_goes_into_the_authority_never_after_the_path(
    monkeypatch: pytest.MonkeyPatch, host: str, schema: str | None, port: int | None, expected: str
) -> None:
    from vendorflow.vendors.recreativ.hook import RecreativHook

    set_conn(monkeypatch, "recreativ_default", conn_type="recreativ", host=host, schema=schema, port=port, password="t")
    assert RecreativHook().base_url() == expected


def test_two_different_ports_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from vendorflow.vendors.recreativ.hook import RecreativHook

    set_conn(monkeypatch, "recreativ_default", conn_type="recreativ", host="http://h:1/api", port=2, password="t")
    with pytest.raises(ConfigError, match="says port 1 but the port field says 2"):
        RecreativHook().base_url()


def test_a_tls_error_names_the_host_and_suggests_the_scheme(  # type: ignore[no-untyped-def]
    sandbox: Sandbox, connect, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vendorflow.vendors.recreativ.hook import RecreativHook

    conn = connect("recreativ", retries=1)
    conn["host"] = conn["host"].replace("http://", "https://")
    monkeypatch.setenv("AIRFLOW_CONN_RECREATIV_DEFAULT", json.dumps(conn))
    with pytest.raises(VendorAPIError) as error:
        RecreativHook().me()
    netloc = sandbox.base_url.removeprefix("http://")
    assert f"TLS handshake with {netloc} failed; is the scheme right" in str(error.value)


# --- numeric extras and the shared budget ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "value", "message"),
    [
        (
            "requests_per_second",
            0.000001,
            "'requests_per_second' is 1e-06, out of range: it must be between 0.01 and 10000",
        ),
        ("concurrency", 10000, "'concurrency' is 10000, out of range: it must be between 1 and 64"),
        ("page_size", 0, "'page_size' is 0, out of range: it must be between 1 and 10000"),
        ("timeout", 0, "'timeout' is 0, out of range"),
        ("request_deadline", 86400, "'request_deadline' is 86400, out of range"),
        ("retries", 1000, "'retries' is 1000, out of range: it must be between 1 and 20"),
    ],
)
def test_numeric_extras_out_of_bounds_fail_before_any_request(
    monkeypatch: pytest.MonkeyPatch, state_dir: Path, extra: str, value: float, message: str
) -> None:
    from vendorflow.vendors.footprints.hook import FootprintsHook

    set_conn(
        monkeypatch,
        "footprints_default",
        conn_type="footprints",
        host="http://127.0.0.1:9/fp",
        login="k",
        password="s",
        extra=json.dumps({extra: value}),
    )
    hook = FootprintsHook()
    with pytest.raises(ConfigError) as error:
        _ = hook.client
    assert message in str(error.value) and "Connection 'footprints_default'" in str(error.value)
    ok, text = hook.test_connection()
    assert not ok and message in text


def test_the_budget_is_named_after_the_rate_so_a_corrected_rate_is_not_held_up(state_dir: Path) -> None:
    typo, fixed = shared_limiter("probe", "cred", 0.01), shared_limiter("probe", "cred", 5)
    assert typo.key != fixed.key
    typo.acquire()  # the typo's budget now holds its next slot 100 s ahead
    assert fixed.acquire() == 0.0  # the corrected rate's budget is another one


def test_a_stale_slot_far_in_the_future_is_dropped(tmp_path: Path) -> None:
    now_ns = 1_700_000_000 * 10**9
    store = FileSlotStore(tmp_path / "b.next", clock=lambda: now_ns)
    (tmp_path / "b.next").write_text(str(now_ns // 1000 + 12 * 86400 * 10**6))  # twelve days ahead
    assert store.reserve(200_000) == 0.0
    assert store.reserve(200_000) == pytest.approx(0.2)


# --- the ledger file ------------------------------------------------------------------------------------------


def test_a_corrupt_ledger_fails_at_once_naming_the_file_and_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vendorflow.ledger import Ledger

    path = tmp_path / "ledger.sqlite"
    path.write_bytes(b"this is not a database, " * 100)
    monkeypatch.setenv("VENDORFLOW_LEDGER_PATH", str(path))
    with pytest.raises(ConfigError) as error:
        Ledger("algonomy_optouts")
    text = str(error.value)
    assert str(path) in text and "not an SQLite database" in text and "VENDORFLOW_LEDGER_PATH" in text


def test_a_ledger_that_cannot_be_created_names_the_file_and_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vendorflow.ledger import Ledger

    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("VENDORFLOW_LEDGER_PATH", str(blocker / "ledger.sqlite"))
    with pytest.raises(ConfigError) as error:
        Ledger("algonomy_optouts")
    assert str(blocker / "ledger.sqlite") in str(error.value) and "VENDORFLOW_LEDGER_PATH" in str(error.value)


def test_a_read_only_ledger_fails_at_once_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from vendorflow.ledger import Ledger

    path = tmp_path / "ledger.sqlite"
    monkeypatch.setenv("VENDORFLOW_LEDGER_PATH", str(path))
    ledger = Ledger("algonomy_optouts")
    ledger.put("a", "requested")
    # Root ignores file modes, so the read-only file is SQLite's own: a connection opened read-only.
    read_only = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    ledger._local.db, ledger._local.pid = read_only, os.getpid()
    with pytest.raises(ConfigError) as error:
        ledger.put("b", "requested")
    assert str(path) in str(error.value) and "read-only" in str(error.value)


# --- Redis ----------------------------------------------------------------------------------------------------


def test_a_dead_redis_names_the_variable_and_host_never_the_password(
    monkeypatch: pytest.MonkeyPatch, state_dir: Path
) -> None:
    from vendorflow.vendors.recreativ.hook import RecreativHook

    monkeypatch.setenv("VENDORFLOW_REDIS_URL", "redis://:hunter2secret@127.0.0.1:1/0")
    set_conn(monkeypatch, "recreativ_default", conn_type="recreativ", host="http://127.0.0.1:9/api", password="tok")
    with pytest.raises(ConfigError) as error:
        RecreativHook().me()
    text = str(error.value)
    assert "Redis at 127.0.0.1:1/0 (VENDORFLOW_REDIS_URL) cannot be used" in text and "hunter2secret" not in text


def test_a_malformed_redis_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from vendorflow import settings

    with pytest.raises(ConfigError, match="VENDORFLOW_REDIS_URL is not a Redis URL"):
        settings.redis_client("localhost:6379")


# --- the connection test and the URL path --------------------------------------------------------------------


def test_algonomy_connection_test_fails_without_the_api_key(  # type: ignore[no-untyped-def]
    sandbox: Sandbox, connect, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vendorflow.vendors.algonomy.hook import AlgonomyHook

    conn = connect("algonomy")
    conn["extra"] = {k: v for k, v in conn["extra"].items() if k != "api_key"}
    monkeypatch.setenv("AIRFLOW_CONN_ALGONOMY_DEFAULT", json.dumps(conn))
    ok, message = AlgonomyHook().test_connection()
    assert not ok and "extra 'api_key' is required" in message


def test_allyy_customer_id_is_one_escaped_path_segment(monkeypatch: pytest.MonkeyPatch) -> None:
    from vendorflow.vendors.allyy.hook import MODELS_PATH, AllyyHook

    set_conn(
        monkeypatch,
        "allyy_default",
        conn_type="allyy",
        host="http://h",
        login="c",
        password="s",
        extra=json.dumps({"customer_id": "acme/../admin?x=1"}),
    )
    assert MODELS_PATH.format(customer=AllyyHook().customer_id) == (
        "/api/model/v1.0/customer/acme%2F..%2Fadmin%3Fx%3D1/model_v2_1"
    )
