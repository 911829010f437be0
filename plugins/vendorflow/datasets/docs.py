"""Documentation from the declarations, the one source of every dataset's columns.

- :func:`table`: the Markdown table of some datasets (dataset, columns, notes);
- :func:`dag_doc`: a DAG's ``doc_md``, its own text followed by the table of the
  datasets it writes (built at parse time: declarations are plain data);
- :func:`render_readme`: the README with every block between
  ``<!-- datasets: a/b c/d -->`` and ``<!-- /datasets -->`` regenerated.

``make docs`` (``python -m vendorflow.datasets.docs``) rewrites the README;
``--check`` fails when it is stale, and the test suite runs the check.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path

from vendorflow import datasets
from vendorflow.datasets.spec import DatasetSpec, output_name

BLOCK = re.compile(r"(<!-- datasets: (?P<keys>[a-z0-9_/ ]+) -->\n)(?P<body>.*?)(<!-- /datasets -->)", re.S)


def columns(spec: DatasetSpec) -> list[str]:
    """The dataset's columns as written (personal data under its ``_hmac`` name, the default)."""
    return [output_name(c) for c in spec.columns]


def table(keys: Iterable[str]) -> str:
    lines = ["| dataset | columns | notes |", "|---|---|---|"]
    for key in keys:
        spec = datasets.get(key)
        notes = spec.notes or spec.description
        lines.append(f"| `{spec.key_name}` | `{', '.join(columns(spec))}` | {notes} |")
    return "\n".join(lines) + "\n"


def dag_doc(doc: str | None, *keys: str) -> str:
    """A DAG's ``doc_md``: its docstring, the datasets it writes (from their declarations), and accounts."""
    vendors = " and ".join(dict.fromkeys(k.partition("/")[0].capitalize() for k in keys))
    accounts = (
        f"Every row has `account`. With `VENDORFLOW_ACCOUNTS` naming several {vendors} accounts, each account "
        "has its own task group here (its own tasks, retries and logs; one failing does not stop the others) and "
        "its own file of each day (`<account>.parquet`); without it, one account `default` on the `_default` "
        "connection."
    )
    return f"{(doc or '').rstrip()}\n\n#### Datasets written\n\n{table(keys)}\n\n#### Accounts\n\n{accounts}"


def render_readme(text: str) -> str:
    return BLOCK.sub(lambda m: m[1] + table(m["keys"].split()) + m[4], text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from vendorflow.settings import PROJECT_ROOT

    readme = Path(PROJECT_ROOT) / "README.md"
    text = readme.read_text()
    fresh = render_readme(text)
    if "--check" in argv:
        if fresh != text:
            print(f"{readme}: the dataset tables are stale; run `make docs`", file=sys.stderr)
            return 1
        return 0
    if fresh != text:
        readme.write_text(fresh)
        print(f"{readme}: dataset tables regenerated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
