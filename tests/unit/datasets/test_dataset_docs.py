"""Docs from one source: the README's dataset tables and every DAG's dataset list come from the declarations."""

from __future__ import annotations

from pathlib import Path

from vendorflow import datasets
from vendorflow.datasets.docs import BLOCK, columns, dag_doc, render_readme, table

README = Path(__file__).parents[3] / "README.md"


def test_the_readme_tables_are_generated_from_the_declarations() -> None:
    text = README.read_text()
    assert render_readme(text) == text, "README.md's dataset tables are stale: run `make docs`"


def test_every_declared_dataset_has_its_table_in_the_readme_once() -> None:
    listed = [key for block in BLOCK.finditer(README.read_text()) for key in block["keys"].split()]
    assert sorted(listed) == sorted(s.key_name for s in datasets.declared())


def test_a_table_lists_the_columns_as_written() -> None:
    leads = datasets.get("footprints/leads")
    assert "user_email_hmac" in columns(leads) and "user_email" not in columns(leads)
    row = table(["footprints/leads"]).splitlines()[2]
    assert row.startswith("| `footprints/leads` | `lead_id, status, ") and leads.notes in row


def test_a_dag_doc_ends_with_its_datasets() -> None:
    doc = dag_doc("### Recreativ\n\nDaily.\n", "recreativ/campaigns")
    assert doc.startswith("### Recreativ\n\nDaily.\n\n#### Datasets written\n")
    assert "| `recreativ/campaigns` | `id, title, active, maxclicks, maxmoney, is_retarget` |" in doc
