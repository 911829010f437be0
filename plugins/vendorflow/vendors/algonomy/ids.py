"""User ids to opt out: what one id may be, and lists of them (a trigger's param, an inbox file)
trimmed, validated and de-duplicated, every bad one refused with where it came from. No Airflow here.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

from vendorflow.errors import ConfigError

ID_HEADERS = frozenset({"user_id", "userid", "user id", "id", "user"})

# The docs say only "userId: a string path parameter". A user id becomes one path
# segment, so it may not contain "/" (proxies decode %2F), whitespace or control
# characters, and may not be "." or "..". The length cap is ours, not the vendor's:
# it catches a whole CSV line or a pasted paragraph taken for an id.
MAX_USER_ID_LENGTH = 256
_BAD_CHARACTER = re.compile(r"[\s/\\\x00-\x1f\x7f]")


def invisible_character(text: str) -> tuple[int, str] | None:
    """The first control (Cc), format (Cf: zero-width, bidirectional overrides...), line or paragraph
    separator (Zl, Zp) or unassigned character of ``text``, as ``(1-based position, description)``.

    ``str.splitlines`` and ``str.strip`` treat several of these as line breaks or
    spaces, so an id holding one could be cut in two, or shortened, unseen.
    """
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            name = unicodedata.name(char, "")
            what = f"U+{ord(char):04X}" + (f" {name}" if name else "")
            return index + 1, f"{char!r} ({what}, a control or invisible character)"
    return None


def user_id_problem(value: Any) -> str | None:
    """Why ``value`` (already trimmed) cannot be sent as a user id, or ``None`` if it can."""
    if not isinstance(value, str):
        return f"must be text, not {type(value).__name__}"
    if not value:
        return "is empty"
    if len(value) > MAX_USER_ID_LENGTH:
        return f"is {len(value)} characters long (at most {MAX_USER_ID_LENGTH})"
    if value in (".", ".."):
        return "is not a user id"
    invisible = invisible_character(value)
    if invisible:
        position, what = invisible
        return f"contains {what} at position {position}"
    bad = _BAD_CHARACTER.search(value)
    if bad:
        return f"contains {bad.group()!r} at position {bad.start() + 1} (no spaces, slashes or control characters)"
    return None


class BadUserIds(ConfigError):
    """Some user ids cannot be sent; the message lists each, where it came from and why."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source, self.problems = source, list(problems)
        shown = "\n  - ".join(self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(f"{source}: {len(self.problems)} user id(s) refused, nothing was sent:\n  - {shown}{more}")


# Only ASCII spaces, tabs and line ends are trimmed: ``str.strip()`` would also eat
# \x1c-\x1f, \x85 and U+2028, which must refuse the id instead.
TRIMMED = " \t\r\n"


def split_lines(text: str) -> list[str]:
    """Lines split on ``\n`` (and ``\r\n``) only, never on the other characters ``str.splitlines`` takes
    for line breaks (``\x0b``, ``\x0c``, ``\x1c``-``\x1e``, ``\x85``, U+2028, U+2029): those stay in the
    line, where the id check refuses them."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def clean_user_ids(values: Iterable[tuple[str, Any]], source: str) -> list[str]:
    """``(where, raw value)`` pairs to the ids to send: trimmed, blank ones skipped, duplicates dropped
    (first one kept). Raises :class:`BadUserIds` naming every bad one."""
    seen: dict[str, None] = {}
    problems = []
    for where, raw in values:
        value = raw.strip(TRIMMED) if isinstance(raw, str) else raw
        if value == "" or value is None:
            continue
        problem = user_id_problem(value)
        if problem:
            shown = value if not isinstance(value, str) else (value if len(value) <= 60 else value[:57] + "...")
            problems.append(f"{where}: {shown!r} {problem}")
            continue
        seen.setdefault(value, None)
    if problems:
        raise BadUserIds(source, problems)
    return list(seen)


def param_user_ids(value: Any) -> list[tuple[str, Any]]:
    """The ``user_ids`` param as ``(where, value)`` pairs: a list (the UI's one-id-a-line box),
    or text with one id a line (a conf written by hand)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [(f"line {n}", line) for n, line in enumerate(split_lines(value), 1)]
    if isinstance(value, (list, tuple)):
        return [(f"item {n}", item) for n, item in enumerate(value, 1)]
    raise BadUserIds("param user_ids", [f"must be a list of user ids, not {type(value).__name__}"])


def file_user_ids(name: str, content: bytes) -> list[tuple[str, Any]]:
    """A CSV or text file, one id a line, as ``(where, value)`` pairs.

    A CSV may have a header naming the column (``user_id``, ``userId``, ``id``);
    without one, each row must have exactly one column. Text files are one id a
    line (a header line named like above is skipped too).
    """
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadUserIds(name, [f"is not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    lines = split_lines(text)
    if not name.lower().endswith(".csv"):
        pairs = [(f"line {n}", line) for n, line in enumerate(lines, 1)]
        if pairs and pairs[0][1].strip(TRIMMED).lower() in ID_HEADERS:
            pairs = pairs[1:]
        return pairs
    # The csv module ends a row at a bare "\r" too: a line holding a control or invisible
    # character is refused before it can be parsed into two rows.
    hidden = []
    for n, line in enumerate(lines, 1):
        found = invisible_character(line.replace("\t", " "))
        if found:
            position, what = found
            hidden.append(f"line {n}: contains {what} at position {position}")
    if hidden:
        raise BadUserIds(name, hidden)
    rows = list(csv.reader(lines))
    if not rows:
        return []
    column = 0
    start = 0
    header = [cell.strip().lower() for cell in rows[0]]
    named = [i for i, cell in enumerate(header) if cell in ID_HEADERS]
    if named:
        column, start = named[0], 1
    pairs: list[tuple[str, Any]] = []
    problems = []
    for n, row in enumerate(rows[start:], start + 1):
        cells = [c for c in row]
        if not any(c.strip() for c in cells):
            continue
        if not named and len(cells) != 1:
            problems.append(f"line {n}: has {len(cells)} columns; one id a line, or a header naming the user_id column")
            continue
        pairs.append((f"line {n}", cells[column] if column < len(cells) else ""))
    if problems:
        raise BadUserIds(name, problems)
    return pairs
