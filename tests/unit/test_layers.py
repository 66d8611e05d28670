"""The layers of docs/architecture.md, checked on the source: every ``import`` of every module
under ``stolon/`` (walked with :mod:`ast`, nothing is imported) against the rules there."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "stolon"

#: The layers, top first, as docs/architecture.md lists them: a module imports (at run time)
#: its own layer or a lower one. Packages are named by their import prefix.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("entry points", ("stolon.cli",)),
    ("test kit", ("stolon.testing",)),
    ("components", ("stolon.sentinel", "stolon.keeper", "stolon.proxy", "stolon.local")),
    ("plugin manager", ("stolon.plugins",)),
    ("services", ("stolon.store", "stolon.postgres", "stolon.fencing", "stolon.backup")),
    ("hook declarations", ("stolon.hookspecs",)),
    (
        "cross-cutting",
        ("stolon.telemetry", "stolon.metrics", "stolon.netutil", "stolon.logonce", "stolon.specstate"),
    ),
    ("model", ("stolon.model",)),
    ("package root", ("stolon",)),
]
COMPONENTS = dict(LAYERS)["components"]
#: The one import that goes up a layer: the hook declaring store backends returns the
#: store layer's StoreBackendSpec (a leaf module: the store protocol and client only).
UPWARD_EXCEPTIONS = {("stolon.hookspecs", "stolon.store.backends")}
#: Where a function may import a stolon module: the entry points load a daemon only after
#: its flags are checked; the test kit imports pytest only when a test needs it.
LAZY_IMPORTS_ALLOWED = ("stolon.cli", "stolon.testing")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module (``from a.b import c``: a.b.c if c is a module, else a.b)
    line: int
    type_only: bool  # under ``if TYPE_CHECKING:``
    in_function: bool
    #: ``from <package> import ...`` of the importing module's own package
    via_own_package: bool

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _package_of(module: str) -> str:
    return (
        module
        if (PACKAGE.parent / module.replace(".", "/") / "__init__.py").exists()
        else module.rpartition(".")[0]
    )


def _walk(node: ast.AST, module: str, type_only: bool, in_function: bool) -> Iterator[Import]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk_one(stmt, module, True, in_function)
            for stmt in child.orelse:
                yield from _walk_one(stmt, module, type_only, in_function)
            continue
        yield from _walk_one(child, module, type_only, in_function)


def _walk_one(node: ast.AST, module: str, type_only: bool, in_function: bool) -> Iterator[Import]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] == "stolon":
                yield Import(module, alias.name, node.lineno, type_only, in_function, False)
        return
    if isinstance(node, ast.ImportFrom):
        if node.level or not node.module or node.module.split(".")[0] != "stolon":
            return
        own = node.module == _package_of(module) and module != node.module
        for alias in node.names:
            sub = f"{node.module}.{alias.name}"
            target = sub if sub in MODULES else node.module
            yield Import(module, target, node.lineno, type_only, in_function, own)
        return
    inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
    yield from _walk(node, module, type_only, inner)


def _imports(module: str) -> list[Import]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    return list(_walk(tree, module, False, False))


ALL = [imp for module in MODULES for imp in _imports(module)]


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _layer(module: str) -> int:
    best, rank = -1, -1
    for i, (_name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            # the longest prefix wins ("stolon" matches everything)
            if _under(module, prefix) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank >= 0, module
    return rank


def test_every_package_has_a_layer() -> None:
    top = {".".join(m.split(".")[:2]) for m in MODULES}
    for package in sorted(top):
        name = LAYERS[_layer(package)][0]
        assert package == "stolon" or name != "package root", (
            f"{package} is in no layer of docs/architecture.md"
        )


def test_the_walk_sees_imports() -> None:
    # guards the rules below against a walk that finds nothing
    keeper_cli = [i.target for i in ALL if i.module == "stolon.cli.keeper"]
    assert "stolon.keeper.config" in keeper_cli and "stolon.keeper.daemon" in keeper_cli
    hookspecs = [i for i in ALL if i.module == "stolon.hookspecs"]
    assert {i.target for i in hookspecs if i.type_only} >= {"stolon.backup.base", "stolon.proxy.policies"}


def test_only_the_entry_points_import_the_cli() -> None:
    bad = [str(i) for i in ALL if _under(i.target, "stolon.cli") and not _under(i.module, "stolon.cli")]
    assert not bad, "\n".join(bad)


def test_imports_point_down() -> None:
    bad = [
        f"{i} ({LAYERS[_layer(i.module)][0]} -> {LAYERS[_layer(i.target)][0]})"
        for i in ALL
        if not i.type_only
        and _layer(i.target) < _layer(i.module)
        and (i.module, i.target) not in UPWARD_EXCEPTIONS
    ]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("service", ["stolon.store", "stolon.postgres"])
def test_store_and_postgres_reach_no_plugin_manager_and_no_component(service: str) -> None:
    forbidden = ("stolon.plugins", "stolon.hookspecs", "stolon.testing", *COMPONENTS)
    bad = [str(i) for i in ALL if _under(i.module, service) and any(_under(i.target, f) for f in forbidden)]
    assert not bad, "\n".join(bad)


def test_services_import_the_plugin_manager_for_types_only() -> None:
    services = dict(LAYERS)["services"]
    bad = [
        str(i)
        for i in ALL
        if any(_under(i.module, s) for s in services)
        and _under(i.target, "stolon.plugins")
        and not i.type_only
    ]
    assert not bad, "\n".join(bad)


def test_components_do_not_import_each_other() -> None:
    bad = []
    for i in ALL:
        mine = next((c for c in COMPONENTS if _under(i.module, c)), None)
        theirs = next((c for c in COMPONENTS if _under(i.target, c)), None)
        if mine and theirs and mine != theirs:
            bad.append(str(i))
    assert not bad, "\n".join(bad)


def test_no_import_inside_a_function_dodges_a_cycle() -> None:
    bad = [
        str(i) for i in ALL if i.in_function and not any(_under(i.module, p) for p in LAZY_IMPORTS_ALLOWED)
    ]
    assert not bad, "\n".join(bad)


def _reached_from(package: str) -> set[str]:
    """The modules of ``package`` that importing it loads (through its own modules)."""
    seen, todo = set(), [package]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += [
            i.target
            for i in _imports(module)
            if not i.type_only and _under(i.target, package) and i.target in MODULES
        ]
    return seen


def test_the_sentinel_decision_imports_its_siblings_by_module() -> None:
    # the package __init__ imports decide(), which imports these: going back through the
    # package while it initialises is a cycle
    decision = _reached_from("stolon.sentinel") - {"stolon.sentinel"}
    assert "stolon.sentinel.normal_phase" in decision
    bad = [str(i) for i in ALL if i.module in decision and i.via_own_package]
    assert not bad, "\n".join(bad)
