"""User ids as the opt-out pipeline reads them: trimmed, validated, de-duplicated; files in CSV or text."""

from __future__ import annotations

from pathlib import Path

import pytest

from vendorflow.vendors.algonomy.ids import (
    MAX_USER_ID_LENGTH,
    BadUserIds,
    clean_user_ids,
    file_user_ids,
    param_user_ids,
    user_id_problem,
)
from vendorflow.vendors.algonomy.optouts import pending_user_ids, record_requested


@pytest.mark.parametrize(
    "good", ["123", "a-b_c.d", "user@example.com", "ÄÖü-ß", "x" * MAX_USER_ID_LENGTH, "a+b?c#d%20"]
)
def test_ids_that_fit_one_path_segment_are_accepted(good: str) -> None:
    assert user_id_problem(good) is None


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("", "is empty"),
        ("a b", "contains ' '"),
        ("a\tb", "contains '\\t'"),
        ("a/b", "contains '/'"),
        ("a\\b", "contains '\\\\'"),
        ("a\x00b", "contains '\\x00'"),
        ("..", "is not a user id"),
        ("x" * (MAX_USER_ID_LENGTH + 1), "characters long"),
        (123, "must be text"),
    ],
)
def test_ids_that_cannot_be_a_user_id_say_why(bad: object, why: str) -> None:
    assert why in (user_id_problem(bad) or "")


def test_ids_are_trimmed_blank_ones_skipped_and_duplicates_sent_once_in_order() -> None:
    pairs = param_user_ids([" b ", "a", "", "b", "  ", "c\n"])
    assert clean_user_ids(pairs, "param user_ids") == ["b", "a", "c"]


def test_every_bad_id_is_named_with_where_it_came_from() -> None:
    with pytest.raises(BadUserIds) as error:
        clean_user_ids(param_user_ids(["ok", "no way", "a/b", 7]), "param user_ids")
    text = str(error.value)
    assert "3 user id(s) refused, nothing was sent" in text
    assert (
        "item 2: 'no way' contains ' '" in text
        and "item 3: 'a/b' contains '/'" in text
        and "item 4: 7 must be text" in text
    )


def test_param_may_be_text_one_id_a_line_but_not_a_number() -> None:
    assert clean_user_ids(param_user_ids("a\n b\n\na\n"), "p") == ["a", "b"]
    assert param_user_ids(None) == []
    with pytest.raises(BadUserIds, match="must be a list"):
        param_user_ids(5)


def test_text_file_one_id_a_line_with_an_optional_header() -> None:
    assert clean_user_ids(file_user_ids("x.txt", b"user_id\r\n1\r\n2\r\n\r\n1\r\n"), "x") == ["1", "2"]
    assert clean_user_ids(file_user_ids("x", "\ufeffa\nb".encode()), "x") == ["a", "b"]


def test_csv_with_a_header_naming_the_column() -> None:
    content = b'email,userId\nx@example.com,"u,1"\ny@example.com, u2 \n'
    assert clean_user_ids(file_user_ids("x.csv", content), "x") == ["u,1", "u2"]


def test_csv_without_header_must_have_one_column() -> None:
    assert clean_user_ids(file_user_ids("x.csv", b"a\nb\n"), "x") == ["a", "b"]
    with pytest.raises(BadUserIds, match="line 2: has 2 columns"):
        file_user_ids("x.csv", b"a\nb,c\n")


def test_a_file_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(BadUserIds, match="not UTF-8"):
        file_user_ids("x.txt", b"\xff\xfe\x00a")


def test_recording_never_reopens_an_id_already_in_the_ledger(tmp_path: Path) -> None:
    from datetime import date

    from vendorflow.ledger import Ledger

    ledger = Ledger("algonomy_optouts", tmp_path / "ledger.sqlite")
    assert record_requested(ledger, ["a", "b"], source="params", run_id="r1", dt=date(2024, 3, 1)) == 2
    ledger.put("a", "accepted", {**ledger.get("a").data, "accepted_at": "2024-03-01T00:00:01+00:00"})  # type: ignore[union-attr]
    assert record_requested(ledger, ["a", "b", "c"], source="params", run_id="r2", dt=date(2024, 3, 2)) == 1
    assert ledger.get("a").status == "accepted"  # type: ignore[union-attr]
    assert ledger.get("b").data["run_id"] == "r1"  # type: ignore[union-attr]
    assert pending_user_ids(ledger) == ["b", "c"]


# --- probes: characters that str.splitlines() and str.strip() take for line breaks or spaces ---------

INVISIBLE = [
    "\x0b",
    "\x0c",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x1f",
    "\x85",
    "\u2028",
    "\u2029",
    "\x80",
    "\x9f",
    "\u200b",
    "\u200d",
    "\u202e",
    "\u2066",
    "\ufeff",
    "\r",
]


@pytest.mark.parametrize("char", INVISIBLE)
def test_a_text_file_holding_a_control_or_invisible_character_is_refused_whole(char: str) -> None:
    content = f"carol\nbob{char}alice\ndave\n".encode()
    with pytest.raises(BadUserIds) as error:
        clean_user_ids(file_user_ids("ids.txt", content), "inbox file ids.txt")
    text = str(error.value)
    assert "line 2:" in text and "at position 4" in text and "nothing was sent" in text


@pytest.mark.parametrize("char", INVISIBLE)
def test_a_csv_file_holding_a_control_or_invisible_character_is_refused_whole(char: str) -> None:
    content = f"user_id\ncarol\nbob{char}alice\n".encode()
    with pytest.raises(BadUserIds, match="line 3: contains"):
        clean_user_ids(file_user_ids("ids.csv", content), "inbox file ids.csv")


@pytest.mark.parametrize("char", INVISIBLE)
def test_the_param_as_text_or_list_with_an_invisible_character_refuses_the_run(char: str) -> None:
    with pytest.raises(BadUserIds, match="line 1: .* at position 4"):
        clean_user_ids(param_user_ids(f"bob{char}alice\ncarol"), "param user_ids")
    with pytest.raises(BadUserIds, match="item 2: .* at position 4"):
        clean_user_ids(param_user_ids(["carol", f"bob{char}alice"]), "param user_ids")
    # an invisible character at either end is not trimmed away either
    with pytest.raises(BadUserIds):
        clean_user_ids(param_user_ids([f"{char}bob" if char != "\r" else "bob\x1e"]), "param user_ids")


def test_windows_line_ends_and_surrounding_blanks_still_work() -> None:
    assert clean_user_ids(file_user_ids("ids.txt", b"a\r\n b \r\n\r\nc"), "f") == ["a", "b", "c"]
    assert clean_user_ids(file_user_ids("ids.csv", b"user_id\r\na\r\nb\r\n"), "f") == ["a", "b"]
