"""The package's imports point one way: no cycles, and no layer imports one above it.

Read from the source with ``ast`` (imports inside functions and under ``TYPE_CHECKING`` count too),
so a lazy import cannot hide a loop. An import of ``a.b.c`` is an edge to module ``a.b.c`` only.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "listing_search"
PACKAGE = "listing_search"

# Lowest first: a module may import its own layer's modules and lower layers' only.
LAYERS = [
    {"schema", "errors", "settings", "pipeline", "core"},
    {"store", "distributed"},  # the store of record; the batch runner (reads and writes blobs only)
    {"data", "vision", "text"},
    {"index"},
    {"models"},
    {"search"},
    {"fit", "evaluate", "serve"},
    {"cli"},
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in SRC.rglob("*.py")}


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Modules of the package that ``path`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in known else base)
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports_of(path, name, known) for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    for i, layer in enumerate(LAYERS):
        if top in layer:
            return i
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS")


def test_the_reader_sees_imports_inside_functions_and_relative_ones(tmp_path):
    src = "import os\nfrom listing_search.core import text\ndef f():\n    from listing_search.store.sql import SqlStore\n"
    (tmp_path / "m.py").write_text(src)
    known = {"listing_search.core.text", "listing_search.store.sql", "listing_search.core"}
    found = imports_of(tmp_path / "m.py", "listing_search.x.m", known)
    assert found == {"listing_search.core.text", "listing_search.store.sql"}


def test_cycles_are_found_in_a_small_graph():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycle():
    found = cycles(graph())
    assert not found, f"import cycles: {found}"


@pytest.mark.parametrize("module", sorted(modules()))
def test_no_module_imports_a_layer_above_its_own(module):
    edges = graph()[module]
    mine = layer_of(module) if module != PACKAGE else len(LAYERS)
    upward = sorted(m for m in edges if layer_of(m) > mine)
    assert not upward, f"{module} (layer {mine}) imports {upward} from higher layers"
