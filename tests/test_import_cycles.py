"""No import cycle among lntune's modules, nor among its sub-packages (lntune/X/).

Imports are read from the source with `ast` (nothing is imported); those under `if TYPE_CHECKING:` do not
count. Between modules, the imports that run when a module is imported must form no cycle; with a
function's own (lazy) imports added, only the cycles listed in KNOWN_LAZY_MODULE_CYCLES. Between
sub-packages every import counts, a function's too: a package that needs another must not be needed by it.

    python -m pytest tests/test_import_cycles.py
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lntune"


def module_names() -> dict[str, Path]:
    """{dotted name: file} of every lntune module; a package is named by its __init__.py."""
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def _top_level_imports(tree: ast.Module):
    """Import statements that run when the module is imported: the module body, and inside its top-level
    if/try/with blocks (except `if TYPE_CHECKING:`)."""
    pending = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                pending += node.body + node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody + [n for h in node.handlers for n in h.body]
        elif isinstance(node, ast.With):
            pending += node.body


def _all_imports(tree: ast.Module):
    """Every import statement, a function's too (except under `if TYPE_CHECKING:`)."""
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for n in ast.walk(node)}
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in skipped]


def imported_modules(name: str, path: Path, known: dict, lazy: bool = False) -> set[str]:
    """The lntune modules `name` imports at module level (`lazy`: anywhere, inside functions too)."""
    is_package = path.name == "__init__.py"
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in _all_imports(tree) if lazy else _top_level_imports(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:  # relative import
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import sub` imports the module pkg.sub when there is one
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        found |= {t for t in targets if t in known and t != name}
    return found


def import_graph(lazy: bool = False) -> dict[str, set[str]]:
    known = module_names()
    return {name: imported_modules(name, path, known, lazy) for name, path in known.items()}


def package_of(module: str) -> str | None:
    """lntune.X for a module under the sub-package lntune/X/; None for lntune's top-level modules."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir() and len(parts) == 2 else None


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    packages: dict[str, set[str]] = {}
    for module, targets in graph.items():
        package = package_of(module)
        if package is not None:
            packages.setdefault(package, set()).update({package_of(t) for t in targets} - {package, None})
    return packages


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path that returns to its start) per strongly connected group of more than one node."""
    return [_cycle_in(graph, group) for group in cyclic_groups(graph)]


def cyclic_groups(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected groups of more than one node: each holds at least one cycle."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(set(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def _cycle_in(graph, group: set) -> list[str]:
    """A shortest path from the group's first node back to itself, inside the group."""
    start = min(group)
    paths, seen = [[start]], {start}
    while paths:
        path = paths.pop(0)
        for nxt in sorted(graph[path[-1]] & group):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                paths.append(path + [nxt])
    return [start]


def test_the_cycle_finder_finds_a_cycle_and_only_one():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_relative_and_from_imports_resolve_to_modules(tmp_path):
    (tmp_path / "m.py").write_text("from typing import TYPE_CHECKING\nfrom lntune.train import loop\n"
                                   "from . import sibling\nimport lntune.errors\nif TYPE_CHECKING:\n"
                                   "    import lntune.config\ndef f():\n    import lntune.cli\n")
    known = {"lntune.train": None, "lntune.train.loop": None, "lntune.pkg.sibling": None, "lntune.errors": None,
             "lntune.cli": None, "lntune.config": None}
    top = {"lntune.train.loop", "lntune.pkg.sibling", "lntune.errors"}
    assert imported_modules("lntune.pkg.m", tmp_path / "m.py", known) == top
    assert imported_modules("lntune.pkg.m", tmp_path / "m.py", known, lazy=True) == top | {"lntune.cli"}


def test_packages_are_the_sub_packages():
    assert package_of("lntune.train.loop") == "lntune.train" and package_of("lntune.eval.metrics.pope") == "lntune.eval"
    assert package_of("lntune.model") == "lntune.model" and package_of("lntune.config") is None


def test_lntune_modules_import_no_cycle():
    graph = import_graph()
    assert len(graph) > 50  # the walk found the package
    assert find_cycles(graph) == []


def test_lntune_packages_import_no_cycle():
    graph = package_graph(import_graph(lazy=True))
    assert {"lntune.train", "lntune.data", "lntune.model", "lntune.bench"} <= set(graph)
    assert find_cycles(graph) == []


# Cycles through a function's own (lazy) import, known and left to untangle: the scorers call score_units,
# whose registry of benchmarks imports the scorers' summaries back. A new lazy cycle fails the test below,
# and so does one of these once it is gone (then delete it here).
KNOWN_LAZY_MODULE_CYCLES = [
    {"lntune.eval.intervals", "lntune.eval.metrics.caption", "lntune.eval.metrics.mme", "lntune.eval.metrics.pope",
     "lntune.eval.metrics.vqav2", "lntune.eval.resampled_scores", "lntune.eval.tasks.base"},
]


def test_lazy_imports_add_no_module_cycle_but_the_known_ones():
    groups = cyclic_groups(import_graph(lazy=True))
    assert sorted(map(sorted, groups)) == sorted(map(sorted, KNOWN_LAZY_MODULE_CYCLES))
