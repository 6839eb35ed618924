"""The package's shape: small modules, and imports that go one way, down the layers (no module imports one that
imports it back, at its top or inside a function)."""
import ast
import graphlib
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "echo_rnn_tf1"
MOST_LINES = 300  # a module a reader holds in one sitting


def test_no_module_is_over_300_lines():
    lines = {path.name: len(path.read_text().splitlines()) for path in PACKAGE.glob("*.py")}
    assert {name: n for name, n in lines.items() if n > MOST_LINES} == {}


def imported(path, modules):
    """The package's ``modules`` that the module at ``path`` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:  # from .x import y; from . import x
            found.update([node.module.split(".")[0]] if node.module else [alias.name for alias in node.names])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("echo_rnn_tf1."):
            found.add(node.module.split(".")[1])
    return found & modules


def test_no_import_cycle():
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    graph = {name: imported(PACKAGE / f"{name}.py", modules) for name in modules}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the cycle


def test_imports_inside_functions_count():
    # memory.py imports evaluate.py only inside its functions
    assert "evaluate" in imported(PACKAGE / "memory.py", {"evaluate"})
