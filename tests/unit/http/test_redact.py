"""Secrets never leave through URLs, messages or urllib3's debug lines."""

from __future__ import annotations

import logging

from vendorflow.http.redact import MASK, RedactingFilter, redact_params, redact_text, redact_url


def test_urls_lose_secret_query_values_and_user_info() -> None:
    url = "https://user:pw@tenant.example/api/lead?access_token=abc123&page=2&Client_Secret=s3"
    clean = redact_url(url)
    assert "abc123" not in clean and "s3" not in clean and "pw@" not in clean
    assert clean == f"https://tenant.example/api/lead?access_token={MASK}&page=2&Client_Secret={MASK}"


def test_params_and_text() -> None:
    assert redact_params({"access_token": "t", "page": 1}) == [("access_token", MASK), ("page", "1")]
    text = "GET /api/lead?page=1&access_token=tok-987654 failed; token tok-987654 again"
    assert "tok-987654" not in redact_text(text, ["tok-987654"])
    assert redact_text("grant_type=pin&pin=1234&username=u") == f"grant_type=pin&pin={MASK}&username=u"


def test_logging_filter_scrubs_urllib3_style_lines() -> None:
    record = logging.LogRecord(
        "urllib3.connectionpool",
        logging.DEBUG,
        __file__,
        1,
        '%s://%s:%s "%s %s %s" %s %s',
        ("http", "h", 80, "GET", "/api/lead?access_token=zzz999&page=1", "HTTP/1.1", 200, 10),
        None,
    )
    assert RedactingFilter().filter(record)
    assert "zzz999" not in record.getMessage()
    assert "page=1" in record.getMessage()


def test_a_registered_token_is_masked_in_texts_errors_ledger_entries_and_columns(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pyarrow as pa

    from vendorflow.errors import VendorAPIError
    from vendorflow.http.redact import redact_value, register_secret
    from vendorflow.ledger import Ledger
    from vendorflow.pipeline.convert import scrub_secrets

    token = "live-token-5f1e2d3c4b5a"
    assert token in redact_text(f"Authorization: Bearer {token}")  # not known yet
    register_secret(token)
    echoed = f"Bad request, headers: authorization: Bearer {token}"
    assert redact_text(echoed) == f"Bad request, headers: authorization: Bearer {MASK}"
    assert token not in str(VendorAPIError("Algonomy", "PUT /x", 400, echoed))
    assert redact_value({"answer": {"echo": [echoed]}, token: 1}) == {
        "answer": {"echo": [redact_text(echoed)]},
        MASK: 1,
    }
    ledger = Ledger("probe", path=tmp_path / "ledger.sqlite")
    ledger.put("id-1", "failed", {"last_error": echoed})
    assert token not in ledger.get("id-1").data["last_error"]
    assert token not in (tmp_path / "ledger.sqlite").read_bytes().decode("latin-1") + "".join(
        p.read_bytes().decode("latin-1") for p in tmp_path.glob("ledger.sqlite-*")
    )
    column = scrub_secrets(pa.array(["fine", echoed, None]))
    assert column.to_pylist() == ["fine", redact_text(echoed), None]
