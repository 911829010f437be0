"""Through the whole algonomy_optout DAG: a file or a trigger holding an id with a control or invisible
character sends nothing of it (the irreversible failure found by probing: ``bob\\x1ealice`` became two users)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from include.sandbox.control import Sandbox
from tests.e2e.test_algonomy_optout import algonomy, puts, run_dag  # noqa: F401 - fixtures, used by name

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]


def test_an_inbox_file_with_a_record_separator_is_refused_whole_and_the_rest_is_sent(
    sandbox: Sandbox, algonomy: dict[str, Any], data_root: Path
) -> None:
    inbox = data_root / "algonomy" / "inbox"
    inbox.mkdir(parents=True)
    (inbox / "export.txt").write_bytes(b"carol\nbob\x1ealice\ndave\n")
    (inbox / "clean.txt").write_text("erin\n")
    run = run_dag()
    assert run.state == "failed"  # the rejected file fails the run, after everything valid was sent
    sent = sorted(r["path"].rsplit("/", 1)[-1] for r in puts(sandbox))
    assert sent == ["erin"]
    rejected = list((inbox / "rejected").rglob("export.txt.errors.txt"))
    assert len(rejected) == 1
    errors = rejected[0].read_text()
    assert "line 2: 'bob\\x1ealice' contains '\\x1e' (U+001E" in errors and "at position 4" in errors


@pytest.mark.parametrize("bad", ["bob\u2028alice", "bob\u200balice", "bob\x85alice", "\u202eecila"])
def test_a_trigger_with_an_invisible_character_sends_nothing(
    sandbox: Sandbox, algonomy: dict[str, Any], data_root: Path, bad: str
) -> None:
    run = run_dag({"user_ids": ["frank", bad]})
    assert run.state == "failed"
    assert puts(sandbox) == []  # not even the good id: the whole request is refused before anything is sent
