"""The package's layers, read from its imports: a higher layer may import a lower one, never the reverse,
and no modules import each other in a circle (function-level imports count too)."""
from __future__ import annotations

import ast
from pathlib import Path

import kdlandmarks

PACKAGE = Path(kdlandmarks.__file__).resolve().parent
# Lowest first. The top-level `kdlandmarks/__init__` is the public facade (lazy) and sits above all.
LAYERS = [
    ("errors", "fileio", "extras", "_lazy", "configs"),
    ("data",),
    ("models",),
    ("inference",),
    ("evaluation",),
    ("training",),
    ("export",),
    ("apps",),
    ("cli", "__main__"),
]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every kdlandmarks module `path` imports, at any depth of its code."""
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("kdlandmarks")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("kdlandmarks"):
                found.add(target)
                found |= {f"{target}.{a.name}" for a in node.names}
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()}


def layer(module: str) -> int | None:
    parts = module.split(".")
    return RANK.get(parts[1]) if len(parts) > 1 else None


def test_every_top_level_module_has_a_layer():
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert sorted(n for n in names if n not in RANK) == []


def test_no_lower_layer_imports_a_higher_one():
    upward = [f"{a} -> {b}" for a, targets in graph().items() for b in targets
              if layer(a) is not None and layer(b) is not None and layer(b) > layer(a)]
    assert upward == []


def test_no_import_circle():
    edges = graph()
    # Kosaraju would do; a depth-first search for a back edge names one circle, which is what a fix needs.
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if nxt.startswith(node + ".") or node.startswith(nxt + ".") and nxt == module_name(PACKAGE / "__init__.py"):
                continue
            if state.get(nxt) == 1:
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    # A package's __init__ re-exporting its own modules is not a circle.
    real = [c for c in circles if not all(m == c[0] or m.startswith(c[0] + ".") or c[0].startswith(m + ".")
                                          for m in c)]
    assert real == []


def test_the_checker_sees_a_violation(tmp_path):
    """The reader finds relative, absolute and function-level imports (so the tests above can fail)."""
    fake = PACKAGE / "data" / "_probe_layers.py"
    source = "from ..apps import bench\n\ndef f():\n    import kdlandmarks.cli.predict\n"
    fake_path = tmp_path / "data" / "_probe_layers.py"
    fake_path.parent.mkdir()
    fake_path.write_text(source)
    # read as if it sat at `fake`: compute names against the real package
    tree_imports = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level:
            tree_imports.add("kdlandmarks." + (node.module or ""))
        elif isinstance(node, ast.Import):
            tree_imports |= {a.name for a in node.names}
    assert {layer(m) for m in tree_imports} == {RANK["apps"], RANK["cli"]}
    assert layer(module_name(fake)) == RANK["data"]
