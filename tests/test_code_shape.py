"""No function in the package takes more than MAX_PARAMETERS parameters or runs over MAX_LINES lines
(issue 27): a longer signature wants an options object, a longer body wants named steps."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import kdlandmarks

PACKAGE = Path(kdlandmarks.__file__).resolve().parent
MAX_PARAMETERS = 8  # self/cls not counted; *args and **kwargs count one each
MAX_LINES = 60  # def line to last line, docstring included

# The one function allowed over a limit, and by exactly this much: the documented keyword API of the
# public class (model, device, backend, detector, num_points, batch_size, calibration, detector_options,
# flip_test). Users pass these by name, so they stay keywords rather than move into an options object;
# the test below fails when one more joins them (or when they drop to the limit: then remove this).
DOCUMENTED_KEYWORD_API = ("inference/detector.py:LandmarkDetector.__init__", 9)


def parameter_count(fn: ast.FunctionDef | ast.AsyncFunctionDef, in_class: bool) -> int:
    a = fn.args
    named = [*a.posonlyargs, *a.args]
    if in_class and named and named[0].arg in ("self", "cls"):
        named = named[1:]
    return len(named) + len(a.kwonlyargs) + (a.vararg is not None) + (a.kwarg is not None)


def oversized(source: str, where: str) -> dict[str, str]:
    """{"<where>:<qualified name>": why} for each function of `source` over a limit (nested ones too)."""
    found: dict[str, str] = {}

    def visit(node: ast.AST, prefix: str, in_class: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.", True)
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{where}:{prefix}{child.name}"
                params, lines = parameter_count(child, in_class), child.end_lineno - child.lineno + 1
                if params > MAX_PARAMETERS or lines > MAX_LINES:
                    found[name] = f"{params} parameters, {lines} lines"
                visit(child, f"{prefix}{child.name}.", False)
            else:
                visit(child, prefix, in_class)

    visit(ast.parse(source), "", False)
    return found


def package_oversized() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        found.update(oversized(path.read_text(encoding="utf-8"), path.relative_to(PACKAGE).as_posix()))
    return found


def test_no_function_is_over_the_limits():
    over = {name: why for name, why in package_oversized().items() if name != DOCUMENTED_KEYWORD_API[0]}
    assert over == {}


def test_the_public_constructor_takes_exactly_its_documented_keywords():
    name, documented = DOCUMENTED_KEYWORD_API
    why = package_oversized().get(name, "within the limits: remove DOCUMENTED_KEYWORD_API")
    assert re.fullmatch(rf"{documented} parameters, \d+ lines", why), why
    assert int(why.split()[2]) <= MAX_LINES, why


def test_the_checker_counts_parameters_and_lines():
    long_body = "\n".join(f"        x{i} = {i}" for i in range(MAX_LINES))
    source = (f"def wide(a, b, c, d, e, f, g, h, *rest):\n    pass\n"
              f"def narrow(a, b, c, d, e, f, g, h):\n    pass\n"
              f"class K:\n    def method(self, a, b, c, d, e, f, g, h):\n        pass\n"
              f"    def long(self):\n{long_body}\n"
              f"def outer():\n    def inner(a, b, c, d, e, f, g, h, *, i):\n        pass\n")
    assert oversized(source, "m.py") == {"m.py:wide": "9 parameters, 2 lines",
                                         "m.py:K.long": f"0 parameters, {MAX_LINES + 1} lines",
                                         "m.py:outer.inner": "9 parameters, 2 lines"}
