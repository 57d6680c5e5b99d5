"""The layout rules of the source tree, checked by reading every file (no imports are executed).

- Layers: ``genome`` imports nothing of ours; ``ctm`` only ``genome``; ``workers`` only ``ctm`` and ``genome``;
  ``search`` anything below it. Inside ``search`` the rooms go one way:
  ``cli → export → open_ended → campaign → views → tracking → strategies → (modules directly in search/)``;
  ``search/__init__.py``, the front door, may name any of them.
- No import cycle between files anywhere. Every import counts: at module level, inside functions, under
  ``TYPE_CHECKING``, ``importlib.import_module("…")`` with a literal, and the dotted module names a package's
  ``__init__`` maps its lazy attributes to.
- At most 8 modules directly in ``search/``; every package opens with a docstring; no module over 400 lines
  (a few listed below may go to 450 while they are split).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("genome", "ctm", "workers", "search")
LAYER = {"genome": 0, "ctm": 1, "workers": 2, "search": 3}
# rooms of search/, lowest first: a room may import its own modules and any lower room
ROOMS = {"base": 0, "strategies": 1, "tracking": 2, "views": 3, "campaign": 4, "open_ended": 5, "export": 6, "cli": 7,
         "front door": 8}
MAX_LINES = 400


def source_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in source_files()}


def resolve(name: str) -> str | None:
    """The most specific module of ours that ``name`` (a dotted path) refers to."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imported_names(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), str(path))
    is_init = path.name == "__init__.py"
    package = module_name(path) if is_init else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield full if full in MODULES else base  # `from pkg import submodule` imports the submodule
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) ==
              "import_module" and node.args and isinstance(node.args[0], ast.Constant)):
            yield str(node.args[0].value)
        elif is_init and isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in MODULES:
            yield node.value  # lazy attribute maps: {"Campaign": "search.campaign.loop", ...}


def edges() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        targets = {t for raw in imported_names(path) if (t := resolve(raw)) is not None and t != name}
        graph[name] = targets
    return graph


def room(module: str) -> str:
    if module == "search":
        return "front door"  # search/__init__.py lists the public API of every room
    parts = module.split(".")
    if parts[0] != "search" or len(parts) == 1 or parts[1] not in ROOMS:
        return "base"
    return parts[1]


def test_the_tree_was_found() -> None:
    assert {"search.campaign.loop", "search.cli.app", "workers.pool", "ctm.model", "genome.genome"} <= set(MODULES)


def test_layers_import_only_downwards() -> None:
    bad = []
    for source, targets in edges().items():
        for target in targets:
            if LAYER[target.split(".")[0]] > LAYER[source.split(".")[0]]:
                bad.append(f"{source} imports {target}")
    assert not bad, "imports against the layer order search → workers → ctm → genome:\n" + "\n".join(sorted(bad))


def test_rooms_of_search_import_only_downwards() -> None:
    bad = []
    for source, targets in edges().items():
        if not source.startswith("search"):
            continue
        for target in targets:
            if target.startswith("search") and ROOMS[room(target)] > ROOMS[room(source)]:
                bad.append(f"{source} ({room(source)}) imports {target} ({room(target)})")
    rooms = "cli → export → open_ended → campaign → views → tracking → strategies → base"
    assert not bad, f"search rooms go {rooms}:\n" + "\n".join(sorted(bad))


def test_no_import_cycles_between_files() -> None:
    graph = edges()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for start in sorted(graph):
        if state.get(start):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                state[node] = 2
            elif state.get(child) == 1:
                cycles.append([*path[path.index(child):], child])
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def test_search_has_at_most_eight_modules_at_its_top() -> None:
    top = sorted(p.name for p in (ROOT / "search").glob("*.py"))
    assert len(top) <= 8, top


def test_every_package_opens_with_a_docstring_saying_what_it_holds() -> None:
    missing = [str(p.relative_to(ROOT)) for p in source_files()
               if p.name == "__init__.py" and not (ast.get_docstring(ast.parse(p.read_text())) or "").strip()]
    assert not missing, missing


def test_search_rooms_say_what_they_may_import() -> None:
    for name in ("campaign", "open_ended", "tracking", "export", "cli", "strategies"):
        doc = ast.get_docstring(ast.parse((ROOT / "search" / name / "__init__.py").read_text())) or ""
        assert "May import" in doc or "may import" in doc, f"search/{name}/__init__.py: say what it may import"


def test_no_module_is_longer_than_about_400_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in source_files() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them): {long}"
