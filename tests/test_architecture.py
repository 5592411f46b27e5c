"""The tree shows the flow: corpus → encoders → indexer → search → api / eval, and nothing imports back up it.

Read from the source with ``ast`` (every import, including those inside functions and under TYPE_CHECKING), so
a new upward import fails here before it becomes a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Each installed package's folder (see pyproject.toml's package-dir).
FOLDERS = {"lsr": "lsr", "lsr.retrieval": "retrieval", "lsr.indexer": "indexer", "lsr.api": "api", "lsr.eval": "eval"}
# Layers in the order data flows; a layer may import only from layers before it (and from itself).
LAYERS = [
    ("base", ("lsr.errors", "lsr.defaults", "lsr.datasets", "lsr.runs")),
    ("encoders", ("lsr.retrieval.encoders",)),
    ("indexer", ("lsr.indexer",)),
    ("search", ("lsr.retrieval.search",)),
    ("training", ("lsr.retrieval.training",)),
    ("eval", ("lsr.eval",)),
    ("api", ("lsr.api",)),
    ("cli", ("lsr.cli", "lsr.__main__")),
]
# Consumers that sit side by side: neither may import the other.
SIBLINGS = [("eval", "api"), ("search", "training")]
NAMESPACES = ("lsr", "lsr.retrieval")  # hold no code of their own: `lsr`'s public names are imported lazily


def layer_of(module: str) -> str | None:
    matches = [
        (len(prefix), name)
        for name, prefixes in LAYERS
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(matches)[1] if matches else None


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lsr"):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("lsr"))
    return names


def test_every_module_belongs_to_a_layer():
    unplaced = sorted(module for module in modules() if module not in NAMESPACES and layer_of(module) is None)
    assert not unplaced, f"modules outside every layer: {unplaced}"


def test_nothing_imports_back_up_the_flow():
    order = {name: rank for rank, (name, _) in enumerate(LAYERS)}
    siblings = {frozenset(pair) for pair in SIBLINGS}
    upward = []
    for module, path in modules().items():
        own = layer_of(module)
        if module in NAMESPACES:
            continue
        for imported in imports(path):
            other = layer_of(imported)
            if other is None or other == own:
                continue
            if order[other] > order[own] or frozenset((own, other)) in siblings:
                upward.append(f"{module} ({own}) imports {imported} ({other})")
    assert not upward, "\n".join(sorted(set(upward)))


def _is_compiled(function: ast.FunctionDef) -> bool:
    """Decorated with numba's ``njit`` (called or bare, through the module or imported)."""
    for decorator in function.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if (isinstance(target, ast.Attribute) and target.attr == "njit") or (
            isinstance(target, ast.Name) and target.id == "njit"
        ):
            return True
    return False


def _called_names(nodes: list[ast.AST]) -> set[str]:
    return {
        node.func.id
        for tree in nodes
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }


def test_no_compiled_function_is_called_both_from_python_and_from_compiled_code():
    """numba's cache gives each cached caller its own compilation of a callee, and a Python call of that callee can
    then read another compilation's constants (see ``best_candidates`` in indexer/engines/base.py)."""
    compiled, from_compiled, from_python = set(), set(), {}
    for module, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
        kernels = [function for function in functions if _is_compiled(function)]
        compiled.update(kernel.name for kernel in kernels)
        from_compiled |= _called_names(kernels)
        kernel_nodes = {id(node) for kernel in kernels for node in ast.walk(kernel)}
        python_calls = [
            node.func.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and id(node) not in kernel_nodes
        ]
        for name in python_calls:
            from_python.setdefault(name, set()).add(module)
    assert {"best_of", "best_candidates", "_top_k_rows"} <= compiled  # the scan sees the kernels it guards
    both = {name: sorted(from_python[name]) for name in compiled & from_compiled if name in from_python}
    assert not both, f"called from Python and from compiled code: {both}"
