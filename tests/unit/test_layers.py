"""The import rules of docs/ARCHITECTURE.md, checked on the source (issue 10).

- Every module imports only from its own package or from lower layers.
- The HTTP edges never import each other, and feature domains never import each other.
- No module imports itself back through others (a cycle), lazy function-level imports included.
- Only `content/` reads or writes content's tables.

The layer table is here and nowhere else; ARCHITECTURE.md draws the same picture."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ROOT = "trustyard"

# Top-level package (or module) of trustyard -> its layer; higher layers import lower ones.
LAYERS: dict[str, int] = {
    # L0: pure, no I/O
    "oci": 0, "errors": 0, "kit": 0, "config": 0,
    # L1: infrastructure
    "storage": 1, "db": 1, "jobs": 1, "events": 1, "metrics": 1,
    # L2a: core domains
    "content": 2, "auth": 2,
    # L1 too: the client of other registries (HTTP and the distribution API, no feature)
    "ociclient": 1,
    # L2b: feature domains
    "scanning": 3, "webhooks": 3, "vulnerabilities": 3, "policies": 3,
    # L2c: features built on the policy engine (its rules decide what they do)
    "mirroring": 4,
    # L3: HTTP edges
    "registry": 5, "api": 5, "metrics_http": 5,
    # L4: composition
    "wiring": 6, "app": 6, "cli": 6, "__main__": 6, "": 6,
}  # fmt: skip
# Packages of one layer that must not import each other: the features and the edges.
APART = {3, 4, 5}

CONTENT_TABLES = frozenset(
    {"repositories", "blobs", "repository_blobs", "manifests", "manifest_references", "tags",
     "uploads"}
)  # fmt: skip
# Modules outside content/ that still touch content's tables: none since issue 10 item 1 ("a
# registry model for content"). The test fails when a module touches them (features read
# through content/reads.py, the access domain through ContentStore and content/repositories.py).
CONTENT_TABLE_USERS_TO_MOVE: frozenset[str] = frozenset()


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted((SRC / ROOT).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if "migrations" in parts:
            continue  # Alembic revisions are history, written against the tables of their day
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


@cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _runtime_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below `node`, except what sits under `if TYPE_CHECKING:` (never imported
    at run time, so no cycle and no dependency)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            yield from (n for branch in child.orelse for n in (branch, *_runtime_nodes(branch)))
            continue
        yield child
        yield from _runtime_nodes(child)


def imports(name: str, path: Path) -> set[str]:
    """The trustyard modules `name` imports at run time, anywhere in its body (function-level
    imports included)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _runtime_nodes(tree(path)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == ROOT)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != ROOT:
                continue
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
    return found


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def known() -> dict[str, Path]:
    return dict(modules())


def graph() -> dict[str, set[str]]:
    names = known()
    return {name: {m for m in imports(name, path) if m in names and m != name}
            for name, path in names.items()}  # fmt: skip


def test_every_package_has_a_layer() -> None:
    assert {top(name) for name in known()} <= set(LAYERS)


def test_imports_point_downwards_and_edges_and_features_stay_apart() -> None:
    wrong = []
    for name, targets in graph().items():
        source = top(name)
        for target in targets:
            other = top(target)
            if other == source or other == "":  # the package's own modules; trustyard itself
                continue
            if LAYERS[other] > LAYERS[source]:
                wrong.append(f"{name} (L{LAYERS[source]}) imports {target} (L{LAYERS[other]})")
            elif LAYERS[other] == LAYERS[source] and LAYERS[source] in APART:
                wrong.append(f"{name} imports {target}: {source} and {other} stay apart")
    assert wrong == []


def test_no_import_cycles() -> None:
    edges = graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)
    # A module that imports a package's __init__ which imports it back is a cycle too.
    assert [" -> ".join(cycle) for cycle in cycles] == []


_SQL = re.compile(
    r"\b(?:from|join|into|update|table)\s+(" + "|".join(sorted(CONTENT_TABLES)) + r")\b",
    re.IGNORECASE,
)


def touches_content_tables(path: Path) -> bool:
    for node in ast.walk(tree(path)):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "trustyard.db.tables"
            and {a.name for a in node.names} & CONTENT_TABLES
        ):
            return True
        if (
            isinstance(node, ast.Attribute)
            and node.attr in CONTENT_TABLES
            and isinstance(node.value, ast.Name)
            and node.value.id == "tables"
        ):
            return True
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _SQL.search(node.value)
        ):
            return True
    return False


def test_only_content_touches_contents_tables() -> None:
    users = {
        name
        for name, path in known().items()
        if top(name) not in {"content", "db"} and touches_content_tables(path)
    }
    assert users == CONTENT_TABLE_USERS_TO_MOVE
