"""The shape of flash_db: no import cycle, SQLAlchemy's public API only.

The layers themselves are import-linter contracts in pyproject.toml, checked by
``lint-imports`` in ``make lint``; these tests check what a layers contract
cannot: that modules of one layer never import each other in a circle (imports
inside functions included), and that no module reaches for SQLAlchemy's private
names or internal modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

PACKAGE = Path(__file__).resolve().parent.parent / "flash_db"

#: SQLAlchemy modules whose names are documented API (the package, its public
#: subpackages, and the modules the documentation names for its classes and functions).
PUBLIC_SQLALCHEMY = {
    "sqlalchemy",
    "sqlalchemy.dialects",
    "sqlalchemy.dialects.postgresql",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.engine",
    "sqlalchemy.exc",
    "sqlalchemy.ext.asyncio",
    "sqlalchemy.ext.compiler",
    "sqlalchemy.orm",
    "sqlalchemy.orm.attributes",
    "sqlalchemy.orm.exc",
    "sqlalchemy.pool",
    "sqlalchemy.schema",
    "sqlalchemy.sql",
    "sqlalchemy.sql.compiler",
    "sqlalchemy.sql.dml",
    "sqlalchemy.sql.elements",
    "sqlalchemy.sql.functions",
    "sqlalchemy.types",
}


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """Return the import cycles among ``modules`` (each as the path that closes it)."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for imported in sorted(graph.find_modules_directly_imported_by(module) & modules):
            if state.get(imported) == 1:
                cycles.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported, [*path, imported])
        state[module] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module, [module])
    return cycles


def test_flash_db_has_no_import_cycle() -> None:
    graph = grimp.build_graph("flash_db", cache_dir=None, exclude_type_checking_imports=True)
    # The package's __init__ re-exports everything: it sits on top of every module.
    modules = {m for m in graph.modules if m != "flash_db"}
    assert len(modules) > 20
    assert _cycles(graph, modules) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(module)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.c")
    graph.add_import(importer="pkg.c", imported="pkg.a")
    assert _cycles(graph, {"pkg.a", "pkg.b", "pkg.c"}) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]


def _sqlalchemy_imports(source: str) -> list[tuple[str, str]]:
    """Return ``(module, name)`` for every import from SQLAlchemy in ``source``."""
    found: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            found.extend((node.module or "", alias.name) for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend(
                (alias.name, "") for alias in node.names if alias.name.startswith("sqlalchemy")
            )
    return found


def test_only_public_sqlalchemy_names_are_imported() -> None:
    offending = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for module, name in _sqlalchemy_imports(path.read_text()):
            if module not in PUBLIC_SQLALCHEMY or name.startswith("_"):
                offending.append(f"{path.relative_to(PACKAGE.parent)}: {module} {name}".strip())
    assert offending == []


def test_the_import_check_refuses_internal_modules_and_private_names() -> None:
    source = (
        "from sqlalchemy.util.concurrency import in_greenlet\n"
        "from sqlalchemy.orm import _private\n"
        "import sqlalchemy.orm.state\n"
    )
    imports = _sqlalchemy_imports(source)
    assert [m for m, n in imports if m not in PUBLIC_SQLALCHEMY or n.startswith("_")] == [
        "sqlalchemy.util.concurrency",
        "sqlalchemy.orm",
        "sqlalchemy.orm.state",
    ]


def _defined_names(trees: list[ast.Module]) -> set[str]:
    """Return every function, class, attribute and variable name that flash_db defines."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return names


def _private_attributes(trees: list[ast.Module], own: set[str]) -> list[str]:
    """Return ``._name`` attribute reads of names that flash_db does not define itself."""
    found = []
    for tree in trees:
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith(("__", "_flash"))
                and node.attr not in own
            ):
                found.append(ast.unparse(node))
    return found


def test_no_private_sqlalchemy_attributes_are_read() -> None:
    trees = [ast.parse(path.read_text()) for path in sorted(PACKAGE.rglob("*.py"))]
    assert _private_attributes(trees, _defined_names(trees)) == []


def test_the_attribute_check_finds_sqlalchemy_private_state() -> None:
    trees = [
        ast.parse(
            "def f(state, stmt):\n"
            "    state._commit_all_states([])\n"
            "    return stmt._where_criteria, obj._sa_instance_state\n"
        )
    ]
    assert _private_attributes(trees, _defined_names(trees)) == [
        "state._commit_all_states",
        "stmt._where_criteria",
        "obj._sa_instance_state",
    ]
