"""The package's layering, read from its source with :mod:`ast` (nothing is imported).

- no import cycle among module-level imports;
- :mod:`vqaudio.checkpoint` builds nothing with the codec or the CLI (the producer hands it the data);
- only the ``train`` command's CLI module imports the training code;
- no reaching into another layer's private attributes (``model._level``,
  ``level.quantizer.lookup_codes(...)``) outside the model and quantizer packages;
- no function longer than :data:`MAX_FUNCTION_LINES` lines;
- no module under ``tests/`` imports another one (``conftest.py`` included): what several test modules
  share is a fixture in ``tests/conftest.py``.

That :mod:`vqaudio.codec.bitstream` imports no torch is checked by running it, in
``tests/test_bitstream.py::test_import_does_not_import_torch``.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "vqaudio"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE
TESTS = Path(__file__).resolve().parent
MAX_FUNCTION_LINES = 80
TRAIN_CLI = "vqaudio.cli.train"  # the module of the ``vqaudio train`` command
# outside these, a model's internals are reached only through its public methods
MODEL_PACKAGES = ("vqaudio.models", "vqaudio.quantize")
# {"vqaudio.module: .attribute": "why reaching in is the reasonable thing there"}; none today
PRIVATE_ALLOWED: dict[str, str] = {}


@dataclass(frozen=True)
class Import:
    """One import statement's target, resolved to a module of the package where it names one."""

    source: str  # the importing module
    target: str  # the imported module (``from m import name`` -> ``m.name`` if that is a module)
    line: int
    at_import: bool  # runs when ``source`` is imported: not in a function, not under TYPE_CHECKING


# --- reading the package -------------------------------------------------------------------------------


@functools.cache
def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


@functools.cache
def tree(module: str) -> ast.Module:
    path = modules()[module]
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def is_package(module: str) -> bool:
    return modules()[module].name == "__init__.py"


@functools.cache
def lazy_exports(package: str) -> dict[str, str]:
    """``{name: module}`` that a package's ``lazy_exports(__name__, {...})`` call declares (see
    :mod:`vqaudio._lazy`): ``from package import name`` imports ``module`` at once."""
    where: dict[str, str] = {}
    for node in ast.walk(tree(package)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy_exports":
            exports = ast.literal_eval(node.args[1])
            where.update({name: module for module, names in exports.items() for name in names})
    return where


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, at_import: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Every node under ``node`` with whether it runs when the module is imported: at module or class
    level, outside ``if TYPE_CHECKING:`` (a function's decorators and defaults run, its body does not)."""
    for child in ast.iter_child_nodes(node):
        yield child, at_import
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            body = child.body if isinstance(child.body, list) else [child.body]
            for part in ast.iter_child_nodes(child):
                inner = at_import and part not in body
                yield part, inner
                yield from _walk(part, inner)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield stmt, False
                yield from _walk(stmt, False)
            for stmt in child.orelse:
                yield stmt, at_import
                yield from _walk(stmt, at_import)
        else:
            yield from _walk(child, at_import)


def _base(module: str, node: ast.ImportFrom) -> str:
    """The module that ``from <base> import ...`` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    package = module if is_package(module) else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


@functools.cache
def imports(module: str) -> tuple[Import, ...]:
    """Every import in ``module``, each ``from m import a, b`` once per target."""
    found = []
    for node, at_import in _walk(tree(module), True):
        if isinstance(node, ast.Import):
            found += [Import(module, alias.name, node.lineno, at_import) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, node)
            for alias in node.names:
                if f"{base}.{alias.name}" in modules():
                    target = f"{base}.{alias.name}"
                elif base in modules() and is_package(base):
                    target = lazy_exports(base).get(alias.name, base)
                else:
                    target = base
                found.append(Import(module, target, node.lineno, at_import))
    return tuple(dict.fromkeys(found))


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


# --- a. import cycles ----------------------------------------------------------------------------------


@functools.cache
def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules that importing it imports first (module-level imports only).

    Importing ``a.b.c`` also runs the ``__init__`` of ``a`` and ``a.b``: those are edges too, except
    for the importer's own packages, which are already being imported when it runs. Imports by
    ``importlib.import_module`` are not seen (``vqaudio.cli`` loads its command modules so; only
    ``vqaudio.__main__`` imports ``vqaudio.cli``).
    """
    graph: dict[str, set[str]] = {m: set() for m in modules()}
    for module in modules():
        for imp in imports(module):
            if not imp.at_import or not _within(imp.target, PACKAGE):
                continue
            parts = imp.target.split(".")
            for depth in range(1, len(parts) + 1):
                target = ".".join(parts[:depth])
                if target in modules() and target != module and not _within(module, target):
                    graph[module].add(target)
    return graph


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, in a stable order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _cycle_through(start: str, graph: dict[str, set[str]], within: set[str]) -> list[str]:
    """A shortest chain ``start -> ... -> start`` inside one strongly connected component."""
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & within):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"{start} is in no cycle")


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = [
        " -> ".join(_cycle_through(component[0], graph, set(component)))
        for component in _strongly_connected(graph)
        if len(component) > 1
    ]
    assert not cycles, "module-level import cycles (make one import lazy or move the shared code):\n" + (
        "\n".join(cycles)
    )


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    components = [c for c in _strongly_connected(graph) if len(c) > 1]
    assert components == [["a", "b", "c"]]
    assert _cycle_through("a", graph, set(components[0])) == ["a", "b", "c", "a"]


def test_lazy_package_exports_resolve_to_their_modules() -> None:
    assert lazy_exports("vqaudio")["load_model"] == "vqaudio.checkpoint"
    assert lazy_exports("vqaudio.data")["scan_corpus"] == "vqaudio.data.corpora"
    # the lazy packages import nothing of theirs at import time, the eager ones do
    assert import_graph()["vqaudio.data"] == {"vqaudio._lazy"}
    assert "vqaudio.codec.bitstream" in import_graph()["vqaudio.codec"]


# --- c, d. layers --------------------------------------------------------------------------------------


def _offending_imports(sources: list[str], forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{modules()[imp.source].relative_to(ROOT.parent)}:{imp.line} imports {imp.target}"
        for source in sources
        for imp in imports(source)
        if any(_within(imp.target, f) for f in forbidden)
    ]


def test_checkpoint_imports_neither_codec_nor_cli() -> None:
    offenders = _offending_imports(["vqaudio.checkpoint"], ("vqaudio.codec", "vqaudio.cli"))
    assert not offenders, "the checkpoint module saves what it is handed:\n" + "\n".join(offenders)


def test_only_the_train_command_imports_training() -> None:
    command = [
        node
        for node in tree(TRAIN_CLI).body
        if isinstance(node, ast.FunctionDef) and node.name == "train" and node.decorator_list
    ]
    assert command, f"{TRAIN_CLI} no longer defines the train command: update TRAIN_CLI"
    outside = [m for m in modules() if not _within(m, "vqaudio.train") and m != TRAIN_CLI]
    offenders = _offending_imports(outside, ("vqaudio.train",))
    assert not offenders, "inference and evaluation must not import training:\n" + "\n".join(offenders)


# --- e. private attributes -----------------------------------------------------------------------------


def _module_aliases(module: str, parsed: ast.Module) -> set[str]:
    """Names bound to modules: ``import a.b`` (``a``), ``import a.b as m``, ``from pkg import submodule``."""
    names = set()
    for node in ast.walk(parsed):
        if isinstance(node, ast.Import):
            names |= {alias.asname or alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = _base(module, node)
            names |= {
                alias.asname or alias.name for alias in node.names if f"{base}.{alias.name}" in modules()
            }
    return names


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined_private_names(parsed: ast.Module) -> set[str]:
    """Private names the classes of a module define: methods, class attributes, ``self._x = ...``."""
    names = set()
    for node in ast.walk(parsed):
        if isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(stmt.name)
                elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    names.add(stmt.target.id)
                elif isinstance(stmt, ast.Assign):
                    names |= {t.id for t in stmt.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                names.add(node.attr)
    return {n for n in names if _is_private(n)}


def private_accesses(module: str, parsed: ast.Module) -> list[tuple[int, str]]:
    """``(line, ".attribute")`` of every reach into another module's internals in ``module``: a private
    attribute that no class of this module defines, on anything but ``self``, ``cls`` or a module, and
    any ``.lookup_codes`` or ``.quantizer.<...>``."""
    aliases = _module_aliases(module, parsed) | {"self", "cls"}
    own = _defined_private_names(parsed)
    found = []
    for node in ast.walk(parsed):
        if not isinstance(node, ast.Attribute):
            continue
        if node.attr == "lookup_codes":
            found.append((node.lineno, ".lookup_codes"))
        elif isinstance(node.value, ast.Attribute) and node.value.attr == "quantizer":
            found.append((node.lineno, f".quantizer.{node.attr}"))
        elif _is_private(node.attr) and node.attr not in own:
            if not (isinstance(node.value, ast.Name) and node.value.id in aliases):
                found.append((node.lineno, f".{node.attr}"))
    return sorted(found)


def test_no_private_attributes_of_other_layers() -> None:
    offenders = [
        f"{modules()[module].relative_to(ROOT.parent)}:{line} {attr}"
        for module in modules()
        if not any(_within(module, p) for p in MODEL_PACKAGES)
        for line, attr in private_accesses(module, tree(module))
        if f"{module}: {attr}" not in PRIVATE_ALLOWED
    ]
    assert not offenders, "ask the object through a public method instead:\n" + "\n".join(offenders)


def test_the_private_attribute_rule() -> None:
    source = """
import numpy as np
class Table:
    _cache = None
    def __init__(self): self._cdf = 1
def f(model, t: Table):
    np._core, t._cdf, t._cache, model.__class__, self._x
    model._level(0)
    model.levels[0].quantizer.lookup_codes(1), model.levels[0].quantizer.codebook
"""
    assert private_accesses("vqaudio.fake", ast.parse(source)) == [
        (8, "._level"),
        (9, ".lookup_codes"),
        (9, ".quantizer.codebook"),
    ]


# --- f. function length --------------------------------------------------------------------------------


def _functions(
    node: ast.AST, prefix: str = ""
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method under ``node``, nested ones included, with its qualified name."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + child.name, child
            yield from _functions(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")
        else:
            yield from _functions(child, prefix)


def test_no_function_longer_than_the_limit() -> None:
    offenders = [
        f"{path.relative_to(ROOT.parent)}:{node.lineno} {name}: {length} lines"
        for module, path in modules().items()
        for name, node in _functions(tree(module))
        if (length := (node.end_lineno or node.lineno) - node.lineno + 1) > MAX_FUNCTION_LINES
    ]
    assert not offenders, f"functions over {MAX_FUNCTION_LINES} lines, decorators aside (split them):\n" + (
        "\n".join(offenders)
    )


# --- g. test modules -----------------------------------------------------------------------------------


def local_imports(source: str, local: set[str]) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``source`` (anywhere, in functions too) of a module of the
    tests folder: a name in ``local`` (the folder's module names), ``tests`` or ``tests.<...>``, or any
    relative import."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = ["." * node.level + (node.module or "")]
        else:
            continue
        for name in names:
            head = name.partition(".")[0]
            if name.startswith(".") or head == "tests" or head in local:
                found.append((node.lineno, name))
    return found


def test_tests_import_no_other_test_module() -> None:
    paths = sorted(TESTS.rglob("*.py"))
    local = {path.stem for path in paths}
    offenders = [
        f"{path.relative_to(TESTS.parent)}:{line} imports {name}"
        for path in paths
        for line, name in local_imports(path.read_text(encoding="utf-8"), local)
    ]
    assert not offenders, "share helpers through fixtures in tests/conftest.py instead:\n" + "\n".join(
        offenders
    )


def test_the_test_import_rule() -> None:
    source = """
import numpy, test_models
from test_compress import ckpt
from tests.test_models import x
from . import conftest
def f():
    import conftest
    from vqaudio import models
"""
    assert local_imports(source, {"test_models", "test_compress", "conftest"}) == [
        (2, "test_models"),
        (3, "test_compress"),
        (4, "tests.test_models"),
        (5, "."),
        (7, "conftest"),
    ]
