"""The layout's rules, checked: a vendor's story in its folder, operators that only adapt, one paging loop."""

from __future__ import annotations

import ast
from pathlib import Path

PLUGINS = Path(__file__).parents[2] / "plugins" / "vendorflow"
MAX_OPERATOR_LINES = 90  # "about 80": a long docstring is not domain code


def modules(pattern: str) -> list[Path]:
    return sorted(PLUGINS.glob(pattern))


def test_every_vendor_keeps_its_hook_form_and_datasets_in_its_folder() -> None:
    vendors = sorted(p.name for p in (PLUGINS / "vendors").iterdir() if p.is_dir() and not p.name.startswith("_"))
    assert vendors == ["algonomy", "allyy", "footprints", "recomendo", "recreativ"]
    for vendor in vendors:
        assert {"hook.py", "form.py", "datasets.py"} <= {p.name for p in (PLUGINS / "vendors" / vendor).iterdir()}


def test_operator_classes_are_short_and_operator_modules_hold_no_domain_code() -> None:
    for path in [*modules("vendors/*/operators.py"), *modules("operators/*.py")]:
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                assert length <= MAX_OPERATOR_LINES, f"{path.name}: {node.name} is {length} lines"
            if isinstance(node, ast.FunctionDef) and path.name == "operators.py":
                assert node.name.startswith("_") and len(node.body) <= 3, f"{path}: function {node.name}"


def test_actions_import_no_airflow() -> None:
    actions = ["recomendo/events.py", "recomendo/training.py", "algonomy/ids.py", "algonomy/inbox.py",
               "algonomy/optouts.py", "allyy/uploads.py"]  # fmt: skip
    for name in actions:
        tree = ast.parse((PLUGINS / "vendors" / name).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not any(m and m.split(".")[0] == "airflow" for m in imported), name


def test_one_paging_loop() -> None:
    loops = []
    for path in modules("**/*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "has_next_page" and isinstance(node.ctx, ast.Load):
                loops.append(path.relative_to(PLUGINS).as_posix())
    assert set(loops) == {"http/paginate.py"}, loops
