"""Accounts: several accounts of one vendor, each on its own Airflow connection (``VENDORFLOW_ACCOUNTS``).

``VENDORFLOW_ACCOUNTS`` names a JSON file::

    {
      "footprints": {"ro": "footprints_ro", "md": "footprints_md"},
      "recomendo": {"default": {"conn_id": "recomendo_default", "footprints": ["ro", "md"]}},
      "algonomy": {"brand_a": "algonomy_brand_a", "brand_b": "algonomy_brand_b"}
    }

An account is a short slug (lower case letters, digits, ``_`` and ``-``; it
names a task group, a file and ledger keys) mapped to its connection id, or to
an object with ``conn_id`` and the accounts of other vendors it takes data from
(a cross-vendor flow: ``"footprints": [...]`` on a Recomendo account names the
Footprints accounts whose leads it is sent; by default, the Footprints account
of the same name, if there is one). A vendor the file does not name, and every
vendor without the file, has one account ``default`` on ``<vendor>_default``.

Read when a DAG file is parsed (a local file, no network, no Variable); a
malformed file fails the parse naming the file and the entry. A connection that
does not exist fails only that account's tasks, when they run
(:meth:`vendorflow.hook.VendorHook.connection`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vendorflow.errors import ConfigError

DEFAULT = "default"
ENV = "VENDORFLOW_ACCOUNTS"
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
CONN_ID = re.compile(r"^[A-Za-z0-9_.-]{1,250}$")
# "data" (and "part-*"): file names of the default account's partitions, now and before; "done", "rejected":
# folders of the Algonomy inbox
RESERVED = frozenset({"data", "done", "rejected"})


@dataclass(frozen=True)
class Account:
    """One account of one vendor: its name, its connection and the accounts of other vendors it takes data from."""

    vendor: str
    name: str
    conn_id: str
    sources: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT

    def fed_by(self, vendor: str) -> tuple[str, ...]:
        """The accounts of ``vendor`` whose data this account takes: as configured, else the account of
        the same name when ``vendor`` has one, else none."""
        if vendor in self.sources:
            return self.sources[vendor]
        return (self.name,) if self.name in {a.name for a in of(vendor)} else ()


def check_name(name: object, where: str = "account") -> str:
    """``name`` when it is a valid account name; otherwise a :class:`ConfigError` saying what is allowed."""
    if not isinstance(name, str) or not NAME.match(name) or name in RESERVED or name.startswith("part-"):
        reserved = f"; {', '.join(sorted(RESERVED))} are reserved" if name in RESERVED else ""
        raise ConfigError(
            f"{where}: {name!r} is not an account name: use 1-32 lower-case letters, digits, '_' or '-', "
            f"starting with a letter{reserved}"
        )
    return name


def _path() -> Path | None:
    raw = os.environ.get(ENV, "").strip()
    return Path(raw).expanduser() if raw else None


_cache: dict[tuple[str, int, int], dict[str, dict[str, Account]]] = {}


def configured() -> dict[str, dict[str, Account]]:
    """Every vendor's configured accounts, from the file ``VENDORFLOW_ACCOUNTS`` names (``{}`` without it).

    Read again whenever the file changes."""
    path = _path()
    if path is None:
        return {}
    try:
        stat = path.stat()
    except OSError as exc:
        raise ConfigError(f"{ENV}={path}: cannot read the accounts file: {exc.strerror or exc}") from None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _cache:
        _cache.clear()
        _cache[key] = parse(path.read_text(), source=f"{ENV}={path}")
    return _cache[key]


def parse(text: str, *, source: str = ENV) -> dict[str, dict[str, Account]]:
    """The accounts of a JSON document (see the module's docstring); errors name ``source`` and the entry."""
    from vendorflow import vendors

    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f'{source}: must be a JSON object {{"<vendor>": {{"<account>": "<conn_id>"}}}}')
    known = vendors.names()
    found: dict[str, dict[str, Account]] = {}
    for vendor, entries in document.items():
        if vendor not in known:
            raise ConfigError(f"{source}: unknown vendor {vendor!r}; the vendors are {', '.join(known)}")
        if not isinstance(entries, dict) or not entries:
            raise ConfigError(f'{source}: "{vendor}" must map at least one account name to a connection id')
        found[vendor] = {}
        for name, value in entries.items():
            where = f'{source}: "{vendor}"'
            check_name(name, where)
            found[vendor][name] = _account(vendor, name, value, where=f'{where}."{name}"', known=known)
    for vendor, accounts in found.items():  # sources must name configured accounts
        for account in accounts.values():
            for other, names in account.sources.items():
                available = set(found.get(other, {DEFAULT: None}))
                missing = [n for n in names if n not in available]
                if missing:
                    raise ConfigError(
                        f'{source}: "{vendor}"."{account.name}" takes data from {other} account(s) '
                        f"{', '.join(missing)}, which {other} does not have ({', '.join(sorted(available))})"
                    )
    return found


def _account(vendor: str, name: str, value: Any, *, where: str, known: tuple[str, ...]) -> Account:
    if isinstance(value, str):
        value = {"conn_id": value}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a connection id, or an object with conn_id")
    conn_id = value.get("conn_id")
    if not isinstance(conn_id, str) or not CONN_ID.match(conn_id):
        raise ConfigError(f"{where}: conn_id must be an Airflow connection id, not {conn_id!r}")
    sources: dict[str, tuple[str, ...]] = {}
    for key, names in value.items():
        if key == "conn_id":
            continue
        if key not in known or key == vendor:
            raise ConfigError(
                f"{where}: unknown key {key!r}: an account holds conn_id and, per other vendor, the accounts it "
                f"takes data from"
            )
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{where}.{key}: must be a list of {key} account names")
        sources[key] = tuple(check_name(n, f"{where}.{key}") for n in dict.fromkeys(names))
    return Account(vendor, name, conn_id, sources)


def of(vendor: str) -> list[Account]:
    """The accounts of ``vendor``, in the configured order; one ``default`` account on
    ``<vendor>_default`` when none are configured."""
    accounts = configured().get(vendor)
    if accounts:
        return list(accounts.values())
    return [Account(vendor, DEFAULT, f"{vendor}_default")]


def get(vendor: str, name: str) -> Account:
    """Account ``name`` of ``vendor``; a :class:`ConfigError` listing the configured ones otherwise."""
    for account in of(vendor):
        if account.name == name:
            return account
    names = ", ".join(a.name for a in of(vendor))
    raise ConfigError(f"{vendor} has no account {name!r} (configured: {names}); add it to the file {ENV} names")


def conn_id(vendor: str, account: str, explicit: str | None = None) -> str:
    """The connection a task of ``account`` uses: the one it was given explicitly, else the account's."""
    return explicit or get(vendor, account).conn_id


def chosen(vendor: str, raw: Any) -> list[str]:
    """The accounts of ``vendor`` a run names (``raw``: a run's ``accounts`` param), or all of them when it
    names none; an unknown name is a :class:`ConfigError` listing the configured ones."""
    configured = [a.name for a in of(vendor)]
    if raw in (None, "", [], "None"):
        return configured
    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"expected a list of {vendor} account names, not {raw!r}")
    names = [n.strip() for n in names]
    unknown = [n for n in names if n not in configured]
    if unknown:
        raise ConfigError(
            f"{vendor} has no account {', '.join(map(repr, unknown))}; the configured accounts are "
            f"{', '.join(configured)} ({ENV})"
        )
    return list(dict.fromkeys(names))


def grouped(vendor: str) -> bool:
    """Whether a DAG shows ``vendor``'s tasks in a group per account: unless its only account is ``default``
    (a deployment with one account keeps its task ids)."""
    return [a.name for a in of(vendor)] != [DEFAULT]


def each(vendor: str) -> Iterator[Account]:
    """Every account of ``vendor``, each inside its own task group (named after it) when :func:`grouped`:
    in a DAG, ``for account in accounts.each("footprints"): DatasetOperator(..., account=account.name)``."""
    if not grouped(vendor):
        yield from of(vendor)
        return
    from airflow.sdk import TaskGroup

    for account in of(vendor):
        with TaskGroup(group_id=account.name, tooltip=f"{vendor} account {account.name} ({account.conn_id})"):
            yield account
