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


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, package: Path = PACKAGE) -> set[str]:
    """Every module of `package` that `path` imports, at any depth of its code (candidates: a name imported
    from a package may be a module of it)."""
    me = module_name(path, package)
    here = me if path.name == "__init__.py" else me.rpartition(".")[0]
    root = package.name
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name == root or a.name.startswith(root + ".")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == root or target.startswith(root + "."):
                found.add(target)
                found |= {f"{target}.{a.name}" for a in node.names}
    return found


def graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package's modules it imports."""
    modules = {module_name(p, package): p for p in package.rglob("*.py")}
    return {name: {m for m in imports_of(path, package) if m in modules and m != name}
            for name, path in modules.items()}


def layer(module: str) -> int | None:
    parts = module.split(".")
    return RANK.get(parts[1]) if len(parts) > 1 else None


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    """"a -> b" for each import of a higher layer's module b by a lower layer's module a."""
    return sorted(f"{a} -> {b}" for a, targets in edges.items() for b in targets
                  if layer(a) is not None and layer(b) is not None and layer(b) > layer(a))


def _related(a: str, b: str) -> bool:
    """A package and its own modules: its __init__ re-exporting them is not a circle."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def import_circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Circles of imports, each named by the modules along it (first repeated last)."""
    # a depth-first search for a back edge names one circle per back edge, which is what a fix needs
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return [c for c in circles if not all(_related(m, c[0]) for m in c)]


def test_every_top_level_module_has_a_layer():
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert sorted(n for n in names if n not in RANK) == []


def test_no_lower_layer_imports_a_higher_one():
    assert upward_imports(graph()) == []


def test_no_import_circle():
    assert import_circles(graph()) == []


def _fake_package(root: Path, files: dict[str, str]) -> Path:
    """A package named kdlandmarks under `root` with `files` (path -> source), every folder a package."""
    package = root / "kdlandmarks"
    for rel, source in {"__init__.py": "", **files}.items():
        path = package / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for folder in path.relative_to(package).parents:
            (package / folder / "__init__.py").touch()
        path.write_text(source)
    return package


def test_the_reader_catches_an_upward_import_and_a_circle(tmp_path):
    """The checks above, on a small package written for the purpose: a relative, an absolute and a
    function-level import of a higher layer, and a circle through a function-level import."""
    package = _fake_package(tmp_path, {
        "data/store.py": "from ..apps import bench\n\ndef f():\n    import kdlandmarks.cli.predict\n",
        "data/crop.py": "from kdlandmarks.data import codec\n",
        "data/codec.py": "def g():\n    from kdlandmarks.data.crop import box_crop\n",
        "models/zoo.py": "from kdlandmarks.data.crop import box_crop\nfrom kdlandmarks.errors import ModelError\n",
        "apps/bench.py": "",
        "cli/predict.py": "from kdlandmarks.apps import bench\n",
        "errors.py": "",
    })
    edges = graph(package)
    assert upward_imports(edges) == ["kdlandmarks.data.store -> kdlandmarks.apps",  # from ..apps import bench
                                     "kdlandmarks.data.store -> kdlandmarks.apps.bench",
                                     "kdlandmarks.data.store -> kdlandmarks.cli.predict"]  # in a function
    assert import_circles(edges) == [["kdlandmarks.data.codec", "kdlandmarks.data.crop", "kdlandmarks.data.codec"]]


def test_the_reader_passes_a_clean_package(tmp_path):
    """Downward imports and a package's __init__ re-exporting its own modules are allowed."""
    package = _fake_package(tmp_path, {
        "data/__init__.py": "from kdlandmarks.data.crop import box_crop\n",
        "data/crop.py": "from kdlandmarks import errors\n",
        "cli/predict.py": "from kdlandmarks.data import crop\n",
        "errors.py": "",
    })
    edges = graph(package)
    assert edges["kdlandmarks.cli.predict"] == {"kdlandmarks.data", "kdlandmarks.data.crop"}
    assert upward_imports(edges) == [] and import_circles(edges) == []
