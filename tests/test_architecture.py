"""The layering of src/moss (docs/architecture.md): imports go downward only, and never in a cycle.

Every import counts, including those under ``if TYPE_CHECKING:`` and inside functions: a cycle
hidden from the interpreter is still a cycle for the reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "moss"

#: Layers from the bottom up; a module may import its own layer (without cycles) and those below.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        (
            "moss.errors",
            "moss.types",
            "moss.flow",
            "moss.version",
            "moss.atomic_files",
            "moss.cache_dir",
        ),
    ),
    ("validation", ("moss.validation",)),
    ("embeddings", ("moss.embeddings",)),
    ("index", ("moss.index",)),
    ("snapshot", ("moss.snapshot",)),
    ("stores", ("moss.stores",)),
    (
        "sessions",
        (
            "moss.documents",
            "moss.loading",
            "moss.session",
            "moss.session_core",
            "moss.querying",
            "moss.client",
            "moss.refresh_policy",
            "moss.hydrator",
            "moss.history",
        ),
    ),
    ("services", ("moss.server", "moss.mcp", "moss.console")),
    ("commands", ("moss.cli",)),
    ("public API", ("moss",)),
    ("examples", ("moss.demo",)),
]

#: The most lines a module may have (issue 12: small modules, one responsibility each).
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    if rank < 0:
        raise AssertionError(f"module {module} belongs to no layer: add it to LAYERS")
    return rank


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The moss modules ``module`` imports, wherever the import statement stands."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # "from pkg import sub" imports the submodule when there is one.
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def test_every_import_goes_downward() -> None:
    upward = [
        f"{source} ({LAYERS[layer_of(source)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for source, targets in import_graph().items()
        for target in sorted(targets)
        if layer_of(target) > layer_of(source)
    ]
    assert not upward, "imports that go up a layer:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    graph = import_graph()
    # A package's __init__ re-exporting its submodules is the one allowed way up: drop the
    # edges from a submodule to its own package, then look for strongly connected components.
    edges = {
        source: {t for t in targets if not source.startswith(t + ".")}
        for source, targets in graph.items()
    }
    cycles = [sorted(component) for component in strongly_connected(edges) if len(component) > 1]
    assert not cycles, f"import cycles: {cycles}"


def test_modules_are_small() -> None:
    large = {
        name: lines
        for name, path in all_modules().items()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not large, f"modules over {MAX_LINES} lines (split them by responsibility): {large}"


@pytest.mark.parametrize(
    ("source", "target", "upward"),
    [("moss.index.engine", "moss.session", True), ("moss.session", "moss.index.engine", False)],
)
def test_the_check_sees_direction(source: str, target: str, upward: bool) -> None:
    assert (layer_of(target) > layer_of(source)) is upward


def test_the_check_sees_cycles() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [sorted(c) for c in strongly_connected(edges) if len(c) > 1] == [["a", "b", "c"]]


def strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components
