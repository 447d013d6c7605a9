"""The package's shape, read from its source: no import cycles, the core below the sweep, sizes.

Imports are read statically (ast) from every module under `vtd/`, module-level and
function-level alike, relative ones resolved against the importing module. Imports under
`if TYPE_CHECKING:` are left out: they never run, so they cannot form a cycle at run time or
load a library. An import of `a.b.c` is an edge to `a.b.c` only (not to the `__init__` of
`a` and `a.b` that Python also runs): a package's `__init__` that imports its own modules
would otherwise be a cycle with each of them.
"""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from collections.abc import Iterator
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ("vtd.model", "vtd.data", "vtd.train", "vtd.evaluate", "vtd.loss")
# What the core must not reach: the sweep's libraries, the sweep, the CLI, and the tools that
# write data sets (a training run needs none of them).
CORE_MUST_NOT_REACH = ("vtd.sweep", "vtd.cli", "vtd.prepare", "vtd.demo")
SWEEP_LIBRARIES = ("optuna", "mlflow")
MAX_MODULE_LINES = 400
MAX_MODULES_PER_FOLDER = 10
SWEEP_PACKAGES = ("plan", "store", "execute", "reporting")


def module_files(source_root: Path, package: str) -> dict[str, Path]:
    """{dotted module name: its file} for every module of `package` under `source_root`."""
    modules = {}
    for path in sorted((source_root / package).rglob("*.py")):
        parts = path.relative_to(source_root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, at any depth (functions, classes, try blocks)."""
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for child in node.orelse:
            yield from _import_nodes(child)
        return
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    for child in ast.iter_child_nodes(node):
        yield from _import_nodes(child)


def imported_names(module: str, path: Path) -> set[str]:
    """The absolute dotted names a module imports (`from a import b` gives `a.b`)."""
    is_package = path.name == "__init__.py"
    names = set()
    for node in _import_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            anchor = package[: len(package) - (node.level - 1)]
            base = ".".join([*anchor, *([node.module] if node.module else [])])
        names.update(base if alias.name == "*" else f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(source_root: Path, package: str) -> tuple[dict[str, set[str]], dict[str, set]]:
    """({module: the package's modules it imports}, {module: every name it imports})."""
    modules = module_files(source_root, package)
    graph: dict[str, set[str]] = {}
    external: dict[str, set[str]] = {}
    for module, path in modules.items():
        names = imported_names(module, path)
        external[module] = names
        targets = set()
        for name in names:
            # `from a.b import c`: c is a module of ours, or a name in a.b (then a.b is).
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph, external


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        return list(error.args[1])
    return None


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, stack = set(), [start]
    while stack:
        for target in graph.get(stack.pop(), ()):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


@pytest.fixture(scope="module")
def vtd_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    return import_graph(ROOT, "vtd")


def test_the_walker_sees_relative_function_level_and_from_imports(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("def f():\n    from .sub import b\n")
    (package / "sub" / "b.py").write_text("from pkg import c\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n"
        "else:\n    import json\n"
    )
    graph, external = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.c"}
    assert graph["pkg.c"] == set() and "json" in external["pkg.c"]  # TYPE_CHECKING left out
    assert find_cycle(graph) is None
    (package / "c.py").write_text("import pkg.a\n")
    graph, _ = import_graph(tmp_path, "pkg")
    assert set(find_cycle(graph) or []) == {"pkg.a", "pkg.sub.b", "pkg.c"}


def test_the_graph_covers_every_module(vtd_graph) -> None:
    graph, _ = vtd_graph
    assert "vtd.sweep.execute.child" in graph["vtd.sweep.execute.runner"]
    # function-level: a pool's worker process imports the worker loop when it starts
    assert "vtd.sweep.execute.worker" in graph["vtd.sweep.execute.pool"]
    assert len(graph) == len(module_files(ROOT, "vtd")) > 60


def test_no_import_cycle(vtd_graph) -> None:
    graph, _ = vtd_graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("core", CORE)
def test_the_core_imports_neither_the_sweep_nor_its_libraries(vtd_graph, core: str) -> None:
    graph, external = vtd_graph
    starts = [module for module in graph if _within(module, (core,))]
    assert starts, f"no module {core}"
    below = set(starts).union(*(reachable(graph, start) for start in starts))
    assert not [m for m in below if _within(m, CORE_MUST_NOT_REACH)], sorted(
        m for m in below if _within(m, CORE_MUST_NOT_REACH)
    )
    libraries = {
        module: sorted(name for name in external[module] if _within(name, SWEEP_LIBRARIES))
        for module in below
    }
    assert not {m: names for m, names in libraries.items() if names}


def test_nothing_imports_the_cli(vtd_graph) -> None:
    graph, _ = vtd_graph
    assert not [module for module, targets in graph.items() if "vtd.cli" in targets]


def test_no_folder_of_more_than_ten_modules() -> None:
    folders: dict[Path, int] = {}
    for path in (ROOT / "vtd").rglob("*.py"):
        folders[path.parent] = folders.get(path.parent, 0) + 1
    assert not {
        str(folder.relative_to(ROOT)): count
        for folder, count in folders.items()
        if count > MAX_MODULES_PER_FOLDER
    }


def test_no_module_over_400_lines() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for path in (ROOT / "vtd").rglob("*.py")
    }
    assert not {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES}


_PROBE = """
import json, sys
import vtd.sweep.plan, vtd.sweep.store, vtd.sweep.execute, vtd.sweep.reporting
packages_alone = sorted(m for m in sys.modules if m.startswith("vtd.sweep."))
import vtd.sweep.execute.child, vtd.sweep.plan.faults
trial = sorted(m for m in ("optuna", "mlflow") if m in sys.modules)
print(json.dumps({"packages_alone": packages_alone, "trial": trial}))
"""


def test_a_trial_process_loads_neither_optuna_nor_mlflow() -> None:
    """Importing the sub-packages loads none of their modules; a trial's imports, no library."""
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = json.loads(probe.stdout.strip().splitlines()[-1])
    packages = [f"vtd.sweep.{name}" for name in SWEEP_PACKAGES]
    assert loaded["packages_alone"] == sorted(packages)
    assert loaded["trial"] == []


@pytest.mark.parametrize("name", SWEEP_PACKAGES)
def test_each_sweep_package_exports_its_public_names(name: str) -> None:
    import importlib

    package = importlib.import_module(f"vtd.sweep.{name}")
    assert package.__doc__ and len(package.__all__) >= 3
    for export in package.__all__:
        value = getattr(package, export)  # raises if the module lacks the name
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__.startswith(package.__name__ + "."), export
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = package.missing
