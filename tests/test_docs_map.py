"""The package map in docs/architecture.md matches the tree: every module is listed once, every listed module exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_map_lists_exactly_the_modules_of_the_tree() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| `([\w/]+\.py)` \|", text, flags=re.M)
    listed = set(rows)
    assert len(rows) == len(listed), f"listed twice: {sorted({r for r in rows if rows.count(r) > 1})}"
    packages = set(re.findall(r"^### `([\w/]+)/`", text, flags=re.M))
    tree = {str(p.relative_to(ROOT)) for pkg in ("genome", "ctm", "workers", "search")
            for p in (ROOT / pkg).rglob("*.py") if p.name != "__init__.py"}
    tree_packages = {str(p.parent.relative_to(ROOT)) for pkg in ("genome", "ctm", "workers", "search")
                     for p in (ROOT / pkg).rglob("__init__.py")}
    assert tree - listed == set(), "modules missing from docs/architecture.md"
    assert listed - tree == set(), "docs/architecture.md lists modules that do not exist"
    assert packages == tree_packages
