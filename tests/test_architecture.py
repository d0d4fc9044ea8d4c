"""The package's import structure (docs/architecture.md): no import cycles among the modules of
``xai/`` and ``plugins/``, and every import goes to the importer's own layer or a lower one.

Every import counts, at module level or inside a function, since a function-level import is
still a dependency (it only runs later). The analysis reads the source files with ``ast``.
"""

from __future__ import annotations

import ast
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: the layers, lowest first; a module may import its own layer and the ones below it. A
#: module is in the layer of its exact name, else of the longest pattern that matches it.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("xai.errors", "xai.config", "xai.registry", "xai.safe_npz",
                    "xai.subsets", "xai.selection", "xai.devices", "xai._warn",
                    "xai.progress", "xai.ray_backend")),
    ("core", ("xai.models", "xai.tabular", "xai.features", "xai.inputs", "xai.removals",
              "xai.behaviours", "xai.gaussian", "xai.protocol", "xai.synthesis", "xai.cache",
              "xai.planner", "xai.game",
              "xai.summaries", "xai.summaries.*", "xai.explanation", "xai.plots",
              "xai.plots.*", "xai.html", "xai.report", "xai.indexing",
              "xai.display", "xai.shap_interop")),
    ("methods", ("xai.presets", "xai.explainer", "xai.external", "xai.ray_explain",
                 "xai.extremal", "xai.pattern_net", "xai.torch_layers",
                 "xai.eva")),
    ("extensions", ("xai.plugins", "xai_*", "xai.concepts", "xai.concepts.*")),
    ("evaluation", ("xai.metrics", "xai.metrics.*", "xai.datasets", "xai.datasets.*",
                    "xai.concepts.primitives", "xai.concepts.scoring", "xai.ray_metrics")),
    ("front ends", ("xai.bench", "xai.bench.*", "xai.cli", "xai.demo", "xai.conformance",
                    "xai.explain_files", "xai.explain_files_ray", "xai.model_files",
                    "xai.data_files",
                    "xai.concepts.benchmark", "xai")),
]


# ---------------------------------------------------------------- the analysis

def module_name(path: Path, root: Path) -> str:
    """Dotted name of a source file: ``xai/bench/runner.py`` -> ``xai.bench.runner``; a
    plugin package under ``plugins/`` is named without that folder."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[0] == "plugins":
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def source_files(root: Path) -> dict[str, Path]:
    """Every module of ``root/xai`` and ``root/plugins`` by dotted name."""
    files = [p for folder in ("xai", "plugins") if (root / folder).is_dir()
             for p in sorted((root / folder).rglob("*.py"))]
    return {module_name(p, root): p for p in files}


def _imported_names(node: ast.AST, package: str) -> list[str]:
    """The dotted names an import statement may refer to (``from a import b``: ``a`` and
    ``a.b``, since ``b`` may be a module), relative imports resolved against ``package``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        parts = package.split(".")
        parts = parts[:len(parts) - (node.level - 1)]
        target = ".".join(parts + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [target] + [f"{target}.{alias.name}" for alias in node.names]


def import_graph(root: Path) -> dict[str, dict[str, str]]:
    """``{module: {imported module: "file:line"}}`` among the modules of ``root``. An import
    of a package's submodule is an edge to that submodule only; a module's import of its own
    parent package (which Python runs first anyway) is not an edge."""
    modules = source_files(root)
    graph: dict[str, dict[str, str]] = {name: {} for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for target in _imported_names(node, package):
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    where = f"{path.relative_to(root)}:{node.lineno}"
                    graph[name].setdefault(target, where)
    return graph


def import_cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm,
    iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start, targets in graph.items():
        if start in index:
            continue
        work = [(start, iter(targets))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(graph[succ])))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def layer_of(module: str) -> int | None:
    """Index in :data:`LAYERS` of ``module``'s layer (None when none names it)."""
    for number, (_, patterns) in enumerate(LAYERS):
        if module in patterns:
            return number
    matches = [(len(p), number) for number, (_, patterns) in enumerate(LAYERS)
               for p in patterns if "*" in p and fnmatch(module, p)]
    return max(matches)[1] if matches else None


def layer_violations(graph: dict[str, dict[str, str]]) -> list[str]:
    """Imports of a higher layer. A package's ``__init__`` may import its own submodules
    whatever their layer (importing them is how their components register)."""
    found = []
    for module, targets in graph.items():
        for target, where in targets.items():
            if target.startswith(module + "."):
                continue
            mine, theirs = layer_of(module), layer_of(target)
            if mine is not None and theirs is not None and theirs > mine:
                found.append(f"{where}: {module} ({LAYERS[mine][0]}) imports {target} "
                             f"({LAYERS[theirs][0]})")
    return found


def _describe(cycle: list[str], graph: dict[str, dict[str, str]]) -> str:
    edges = [f"  {a} -> {b} ({graph[a][b]})" for a in cycle for b in cycle if b in graph[a]]
    return "import cycle among " + ", ".join(cycle) + ":\n" + "\n".join(edges)


# ---------------------------------------------------------------- the package

@pytest.fixture(scope="module")
def graph() -> dict[str, dict[str, str]]:
    if not (ROOT / "xai" / "__init__.py").is_file():
        pytest.skip("needs the source tree (xai/ beside tests/)")
    return import_graph(ROOT)


def test_package_has_no_import_cycles(graph):
    cycles = import_cycles(graph)
    assert not cycles, "\n".join(_describe(c, graph) for c in cycles) + (
        "\nBreak it by moving the shared helper to the lower module, passing what is needed "
        "in, or registering through the registry (docs/architecture.md).")


def test_every_module_belongs_to_a_layer(graph):
    missing = sorted(m for m in graph if layer_of(m) is None)
    assert not missing, (f"modules in no layer: {missing}; add each to LAYERS in "
                         "tests/test_architecture.py and to docs/architecture.md")


def test_imports_go_to_the_same_or_a_lower_layer(graph):
    violations = layer_violations(graph)
    assert not violations, "imports of a higher layer:\n" + "\n".join(violations)


def test_registry_imports_no_component_module(graph):
    # components register themselves by being imported; the registry knows none of them
    assert set(graph["xai.registry"]) <= {"xai.errors"}


def test_plugins_import_modules_not_the_package(graph):
    plugins = [m for m in graph if m.startswith("xai_")]
    assert plugins
    assert not [m for m in plugins if "xai" in graph[m]]


# ---------------------------------------------------------------- the analysis itself

def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_cycle_through_a_function_level_import_is_found(tmp_path):
    root = _tree(tmp_path, {
        "xai/__init__.py": "from . import registry\n",
        "xai/registry.py": "def get():\n    from .plugins import load\n    return load()\n",
        "xai/plugins.py": "from xai import registry\n",
        "xai/removals.py": "from .registry import get\n",
    })
    graph = import_graph(root)
    assert graph["xai.registry"] == {"xai.plugins": "xai/registry.py:2"}
    assert import_cycles(graph) == [["xai.plugins", "xai.registry"]]


def test_relative_and_package_imports_resolve_to_modules(tmp_path):
    root = _tree(tmp_path, {
        "xai/__init__.py": "",
        "xai/bench/__init__.py": "from .runner import run\n",
        "xai/bench/runner.py": "from ..metrics import base\nimport xai.bench\n",
        "xai/metrics/__init__.py": "",
        "xai/metrics/base.py": "from ..bench import runner\n",
        "plugins/xai_demo/__init__.py": "import xai\n",
    })
    graph = import_graph(root)
    # "from ..metrics import base" runs xai/metrics/__init__.py too; its own package is no edge
    assert set(graph["xai.bench.runner"]) == {"xai.metrics", "xai.metrics.base"}
    assert set(graph["xai_demo"]) == {"xai"}
    assert import_cycles(graph) == [["xai.bench", "xai.bench.runner", "xai.metrics.base"]]


def test_an_import_of_a_higher_layer_is_reported():
    graph = {"xai.inputs": {"xai.explainer": "xai/inputs.py:3"},
             "xai.explainer": {"xai.inputs": "xai/explainer.py:9"},
             "xai": {"xai.cli": "xai/__init__.py:1"}, "xai.cli": {}}
    assert layer_violations(graph) == [
        "xai/inputs.py:3: xai.inputs (core) imports xai.explainer (methods)"]
    assert layer_of("xai.concepts.primitives") == layer_of("xai.metrics.base")
    assert layer_of("xai.concepts.craft") == layer_of("xai_shap")
