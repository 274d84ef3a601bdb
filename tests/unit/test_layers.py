"""The package keeps to the layer table in its own docstring.

``crackkit/__init__.py`` lists the layers, one a line, from the top down::

    4 interface      cli notebook
    ...
    0 ground         specs paths files config

(number, layer name, then module names relative to the package; a name may be a subpackage, so
``data`` covers ``crackkit.data`` and every ``crackkit.data.*`` module). That docstring is the
one source of the layers: this file reads it with :mod:`ast` and never imports crackkit.

The rules, each with its own test so that a failure names the rule it broke:

- every module of the package is in a layer, and every table entry names a module;
- no import goes up a layer (a module imports from its own layer or the ones below);
- no imports go round in a circle, whichever layers the modules are in;
- the top-level ``__init__`` imports nothing of the package (it is only the docstring).

Every import of a package module counts: module-level ones, lazy ones inside functions and
methods, ``import pkg.x``, ``from pkg.x import y``, ``from pkg import x``, relative imports, and
``importlib.import_module("pkg.x")`` with a literal name. The walker takes the package root and
the table as arguments, and the tests at the bottom run it on small synthetic packages to show
it catches what it claims.
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "crackkit"

# A table line: indented, a layer number, a layer name, then one or more module names.
_TABLE_LINE = re.compile(r"^\s+(\d+)\s+([A-Za-z_]\w*)\s+((?:[A-Za-z_][\w.]*\s*)+)$")


# --- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One module name of the table, in its layer."""

    name: str  # relative to the package: "data" covers pkg.data and pkg.data.*
    layer: int
    layer_name: str
    where: str  # "file:line" of the table line, for messages

    def label(self) -> str:
        return f"layer {self.layer} {self.layer_name}"


def parse_table(text: str, source: str = "<table>", first_line: int = 1) -> tuple[Entry, ...]:
    """The entries of every table line in ``text``; line i of text is line first_line + i."""
    entries = []
    for offset, line in enumerate(text.splitlines()):
        match = _TABLE_LINE.match(line)
        if match is None:
            continue
        number, layer_name, names = match.groups()
        where = f"{source}:{first_line + offset}"
        entries.extend(Entry(name, int(number), layer_name, where) for name in names.split())
    return tuple(entries)


def read_table(init: Path) -> tuple[Entry, ...]:
    """The table in the docstring of the package ``__init__.py`` at ``init``, read as text."""
    tree = ast.parse(init.read_text(encoding="utf-8"), filename=str(init))
    # clean=False keeps the docstring's lines as they are in the file, so line numbers hold.
    doc = ast.get_docstring(tree, clean=False)
    if doc is None:
        return ()
    return parse_table(doc, _display(init, init.parent), tree.body[0].lineno)


def table_shape_problems(table: Sequence[Entry]) -> list[str]:
    """An empty table, a layer number used for two layer names, an entry listed twice."""
    if not table:
        return ["no layer table found (lines like '    0 ground  specs paths')"]
    problems = []
    names: dict[int, Entry] = {}
    seen: dict[str, Entry] = {}
    for entry in table:
        other = names.setdefault(entry.layer, entry)
        if other.layer_name != entry.layer_name:
            problems.append(
                f"{entry.where}: layer number {entry.layer} is {entry.layer_name!r} here "
                f"and {other.layer_name!r} at {other.where}"
            )
        first = seen.setdefault(entry.name, entry)
        if first is not entry:
            problems.append(
                f"{entry.where}: table entry {entry.name!r} ({entry.label()}) is already "
                f"listed at {first.where} ({first.label()})"
            )
    return problems


def layer_of(module: str, package: str, table: Sequence[Entry]) -> Entry | None:
    """The entry covering ``module``, the longest matching name winning; None if none does."""
    if not module.startswith(package + "."):
        return None  # the top-level package itself is in no layer
    rel = module[len(package) + 1 :]
    best = None
    for entry in table:
        if rel == entry.name or rel.startswith(entry.name + "."):
            if best is None or len(entry.name) > len(best.name):
                best = entry
    return best


# --- the walker ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One import of a package module by a package module."""

    importer: str
    imported: str  # the module named: pkg.x for "from pkg.x import y" and "from pkg import x"
    where: str  # "file:line"
    note: str  # "", "lazy" (inside a function) or "TYPE_CHECKING"

    def describe(self) -> str:
        note = f" ({self.note})" if self.note else ""
        return f"{self.where}: {self.importer} imports {self.imported}{note}"


def _display(path: Path, root: Path) -> str:
    return path.relative_to(root.parent).as_posix()


def find_modules(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root``, by dotted name (a package by its __init__)."""
    package = root.name
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        if all(part.isidentifier() for part in parts):  # skips __pycache__ and such
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterator[tuple[ast.AST, str]]:
    """Every import statement and call anywhere in ``tree``, with a note on where it sits."""
    stack: list[tuple[ast.AST, str]] = [(tree, "")]
    while stack:
        node, note = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom | ast.Call):
            yield node, note
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            # Imports under `if TYPE_CHECKING:` count too: they never run, but the annotations
            # that use them still tie this module to the imported one, so they are dependencies
            # and must keep to the layers; a cycle through them is still a cycle in the design.
            stack.extend((child, note or "TYPE_CHECKING") for child in node.body)
            stack.extend((child, note) for child in node.orelse)
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            note = "lazy"  # runs when called, but is as much a dependency as a top-level one
        stack.extend((child, note) for child in ast.iter_child_nodes(node))


def _relative_base(module: str, is_package: bool, level: int, name: str | None) -> str | None:
    """The absolute module of ``from <level dots><name> import ...`` in ``module``."""
    parts = module.split(".")
    if not is_package:
        parts.pop()  # a plain module's "." is the package that holds it
    if level - 1 > len(parts) - 1:
        return None  # goes above the top-level package
    parts = parts[: len(parts) - (level - 1)]
    return ".".join([*parts, name] if name else parts)


def _literal_import_module(call: ast.Call) -> str | None:
    """The name in ``importlib.import_module("x")`` or ``__import__("x")``, if a literal."""
    func = call.func
    named = (isinstance(func, ast.Name) and func.id in ("import_module", "__import__")) or (
        isinstance(func, ast.Attribute) and func.attr == "import_module"
    )
    if named and call.args and isinstance(call.args[0], ast.Constant):
        value = call.args[0].value
        if isinstance(value, str) and not value.startswith("."):
            return value
    return None


def collect_imports(root: Path, modules: Mapping[str, Path] | None = None) -> list[Import]:
    """Every import of a module of the package at ``root`` by a module of it, in file order.

    ``from pkg.sub import x`` names ``pkg.sub.x`` when that is a module, else ``pkg.sub``. The
    parent packages that Python also runs on the way (``pkg``, ``pkg.sub``'s ``__init__``) are
    not counted: every submodule would then depend on its package's ``__init__``, and every
    ``__init__`` that re-exports its submodules would be a cycle.
    """
    package = root.name
    modules = find_modules(root) if modules is None else modules

    def ours(name: str) -> bool:
        return name == package or name.startswith((package + ".", package + " "))

    found = []
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        targets: list[tuple[str, int, str]] = []
        for node, note in _import_nodes(tree):
            line = getattr(node, "lineno", 0)
            if isinstance(node, ast.Import):
                targets.extend((alias.name, line, note) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = _relative_base(module, is_package, node.level, node.module)
                    if base is None:  # above the package: kept for the dangling-import check
                        unresolved = "." * node.level + (node.module or "")
                        targets.append((f"{package} {unresolved}", line, note))
                        continue
                else:
                    base = node.module or ""
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append((sub if sub in modules else base, line, note))
            elif isinstance(node, ast.Call):
                name = _literal_import_module(node)
                if name is not None:
                    targets.append((name, line, note))
        where = _display(path, root)
        # dict.fromkeys: "from pkg.x import a, b" is one import of pkg.x, not two.
        found.extend(
            dict.fromkeys(
                Import(module, name, f"{where}:{line}", note)
                for name, line, note in targets
                if ours(name)
            )
        )
    return sorted(found, key=lambda i: (i.where.rsplit(":", 1)[0], int(i.where.rsplit(":")[-1])))


# --- the checks ------------------------------------------------------------------------------


def unlisted_modules(root: Path, modules: Mapping[str, Path], table: Sequence[Entry]) -> list[str]:
    """(a) Modules in no layer of the table (the top-level __init__ needs none)."""
    package = root.name
    return [
        f"{_display(path, root)}: module {module} is in no layer of the table"
        for module, path in modules.items()
        if module != package and layer_of(module, package, table) is None
    ]


def unmatched_entries(root: Path, modules: Mapping[str, Path], table: Sequence[Entry]) -> list[str]:
    """(b) Table entries that match no module of the package."""
    package = root.name
    return [
        f"{entry.where}: table entry {entry.name!r} ({entry.label()}) matches no module of "
        f"{package} (no {package}/{entry.name.replace('.', '/')}.py or package)"
        for entry in table
        if not any(layer_of(m, package, [entry]) for m in modules)
    ]


def upward_imports(root: Path, imports: Sequence[Import], table: Sequence[Entry]) -> list[str]:
    """(c) Imports whose importer sits in a lower layer than the module it imports."""
    package = root.name
    problems = []
    for imp in imports:
        low = layer_of(imp.importer, package, table)
        high = layer_of(imp.imported, package, table)
        # Unlisted modules are reported by (a); the top-level package has its own rule.
        if low is not None and high is not None and low.layer < high.layer:
            problems.append(
                f"{imp.describe()}: {imp.importer} is in {low.label()}, {imp.imported} "
                f"in {high.label()}"
            )
    return problems


def _strongly_connected(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of ``graph``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def import_cycles(imports: Sequence[Import]) -> list[str]:
    """(d) One shortest cycle for every group of modules that import each other round."""
    first: dict[tuple[str, str], Import] = {}
    for imp in imports:
        if imp.importer != imp.imported:  # a module naming itself is no cycle between modules
            first.setdefault((imp.importer, imp.imported), imp)
    graph: dict[str, list[str]] = {}
    for a, b in sorted(first):
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
    problems = []
    for component in _strongly_connected(graph):
        if len(component) < 2:
            continue
        members = set(component)
        start = component[0]
        # Breadth-first from start, inside the component, back to start.
        came_from: dict[str, str] = {}
        frontier = [start]
        while start not in came_from:
            following = []
            for node in frontier:
                for succ in graph[node]:
                    if succ in members and succ not in came_from:
                        came_from[succ] = node
                        following.append(succ)
            frontier = following
        path = [start]
        while True:
            path.append(came_from[path[-1]])
            if path[-1] == start:
                break
        path.reverse()
        edges = [first[(a, b)].describe() for a, b in zip(path, path[1:], strict=False)]
        others = f" (with {', '.join(component)})" if len(component) > len(path) - 1 else ""
        problems.append(
            f"cycle {' -> '.join(path)}{others}:\n" + "\n".join(f"    {e}" for e in edges)
        )
    return problems


def top_init_imports(root: Path, imports: Sequence[Import]) -> list[str]:
    """The top-level __init__ imports nothing of the package."""
    return [
        f"{imp.describe()}: the top-level __init__ must import nothing of {root.name}"
        for imp in imports
        if imp.importer == root.name
    ]


def dangling_imports(modules: Mapping[str, Path], imports: Sequence[Import]) -> list[str]:
    """Imports of package modules that do not exist."""
    return [
        f"{imp.describe()}: there is no module {imp.imported}"
        for imp in imports
        if imp.imported not in modules
    ]


@dataclass(frozen=True)
class Report:
    """What each rule found in one package."""

    table: list[str]
    unlisted: list[str]
    unmatched: list[str]
    upward: list[str]
    cycles: list[str]
    top_init: list[str]
    dangling: list[str]


def check_package(root: Path, table: Sequence[Entry]) -> Report:
    """Hold the package at ``root`` (its folder) to ``table``."""
    modules = find_modules(root)
    imports = collect_imports(root, modules)
    return Report(
        table=table_shape_problems(table),
        unlisted=unlisted_modules(root, modules, table),
        unmatched=unmatched_entries(root, modules, table),
        upward=upward_imports(root, imports, table),
        cycles=import_cycles(imports),
        top_init=top_init_imports(root, imports),
        dangling=dangling_imports(modules, imports),
    )


def _message(rule: str, problems: Sequence[str]) -> str:
    return f"{len(problems)} {rule}:\n" + "\n".join(f"  {p}" for p in problems)


# --- the real package ------------------------------------------------------------------------


@cache
def _real() -> Report:
    return check_package(PACKAGE_ROOT, read_table(PACKAGE_ROOT / "__init__.py"))


def test_docstring_has_a_layer_table():
    """crackkit/__init__.py's docstring holds a table: one name per layer, each entry once."""
    problems = _real().table
    assert not problems, _message("problems with the layer table", problems)


def test_every_module_is_in_a_layer():
    """(a) Every module of crackkit is in some layer of the table."""
    problems = _real().unlisted
    assert not problems, _message("modules in no layer", problems)


def test_every_table_entry_matches_a_module():
    """(b) Every name in the table is a module or subpackage of crackkit."""
    problems = _real().unmatched
    assert not problems, _message("table entries that match no module", problems)


def test_no_import_goes_up_a_layer():
    """(c) A module imports from its own layer or the layers below it, lazily or not."""
    problems = _real().upward
    assert not problems, _message("imports that go up a layer", problems)


def test_no_import_cycles():
    """(d) No imports go round in a circle, across layers or inside one."""
    problems = _real().cycles
    assert not problems, _message("import cycles", problems)


def test_top_level_init_imports_nothing():
    """crackkit/__init__.py is only the docstring: importing crackkit imports nothing else."""
    problems = _real().top_init
    assert not problems, _message("imports in crackkit/__init__.py", problems)


def test_every_import_names_a_module():
    """Every import of a crackkit module names one that exists."""
    problems = _real().dangling
    assert not problems, _message("imports of modules that do not exist", problems)


# --- the walker on synthetic packages --------------------------------------------------------

_TABLE = '''"""A synthetic package.

    2 top     app
    1 middle  engine helpers
    0 bottom  base data
"""
'''


def _package(tmp_path: Path, files: Mapping[str, str], init: str = _TABLE) -> Path:
    """Write package ``pkg`` under tmp_path: its __init__ (the table) and ``files``."""
    root = tmp_path / "pkg"
    root.mkdir(parents=True)
    (root / "__init__.py").write_text(init)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def _check(root: Path) -> Report:
    return check_package(root, read_table(root / "__init__.py"))


_CLEAN = {
    "app.py": """
        from pkg import engine
        from pkg.data import Thing
        import pkg.helpers as helpers
        """,
    "engine.py": """
        from typing import TYPE_CHECKING

        from . import helpers, base
        from .data.reader import read

        if TYPE_CHECKING:
            from pkg.data.reader import Reader

        def run():
            import importlib
            return importlib.import_module("pkg.base")
        """,
    "helpers.py": "from pkg.base import CONSTANT\n",
    "base.py": "CONSTANT = 1\n",
    "data/__init__.py": "from .reader import read\nThing = object\n",
    "data/reader.py": "from .. import base\nfrom ..base import CONSTANT\n",
}


def test_table_is_read_from_the_docstring(tmp_path):
    root = _package(tmp_path, {})
    table = read_table(root / "__init__.py")
    assert [(e.name, e.layer, e.layer_name, e.where) for e in table] == [
        ("app", 2, "top", "pkg/__init__.py:3"),
        ("engine", 1, "middle", "pkg/__init__.py:4"),
        ("helpers", 1, "middle", "pkg/__init__.py:4"),
        ("base", 0, "bottom", "pkg/__init__.py:5"),
        ("data", 0, "bottom", "pkg/__init__.py:5"),
    ]
    assert layer_of("pkg.data", "pkg", table).name == "data"
    assert layer_of("pkg.data.reader", "pkg", table).name == "data"
    assert layer_of("pkg.database", "pkg", table) is None
    assert layer_of("pkg", "pkg", table) is None


def test_table_shape_problems_are_caught():
    table = parse_table("    1 a  x y\n    1 b  z\n    0 c  x\n")
    problems = table_shape_problems(table)
    assert len(problems) == 2
    assert "layer number 1 is 'b' here and 'a'" in problems[0]
    assert "'x' (layer 0 c) is already listed at <table>:1 (layer 1 a)" in problems[1]
    assert table_shape_problems(()) == [
        "no layer table found (lines like '    0 ground  specs paths')"
    ]


def test_walker_finds_every_kind_of_import(tmp_path):
    root = _package(tmp_path, _CLEAN)
    found = {(i.importer, i.imported, i.where, i.note) for i in collect_imports(root)}
    assert found == {
        ("pkg.app", "pkg.engine", "pkg/app.py:2", ""),  # from pkg import sub
        ("pkg.app", "pkg.data", "pkg/app.py:3", ""),  # a name from a subpackage's __init__
        ("pkg.app", "pkg.helpers", "pkg/app.py:4", ""),
        ("pkg.engine", "pkg.helpers", "pkg/engine.py:4", ""),  # from . import x
        ("pkg.engine", "pkg.base", "pkg/engine.py:4", ""),
        ("pkg.engine", "pkg.data.reader", "pkg/engine.py:5", ""),  # from .folder import y
        ("pkg.engine", "pkg.data.reader", "pkg/engine.py:8", "TYPE_CHECKING"),
        ("pkg.engine", "pkg.base", "pkg/engine.py:12", "lazy"),  # import_module("pkg.base")
        ("pkg.helpers", "pkg.base", "pkg/helpers.py:1", ""),
        ("pkg.data", "pkg.data.reader", "pkg/data/__init__.py:1", ""),  # . in a package
        ("pkg.data.reader", "pkg.base", "pkg/data/reader.py:1", ""),  # from .. import x
        ("pkg.data.reader", "pkg.base", "pkg/data/reader.py:2", ""),
    }


def test_clean_package_passes_every_rule(tmp_path):
    assert _check(_package(tmp_path, _CLEAN)) == Report([], [], [], [], [], [], [])


def test_cycle_through_a_lazy_import_is_caught(tmp_path):
    root = _package(
        tmp_path,
        {
            "app.py": "",
            "engine.py": "from pkg.helpers import helper\n",
            "helpers.py": """
                from pkg import base


                class Helper:
                    def go(self):
                        from pkg.engine import engine_thing
                """,
            "base.py": "",
            "data/__init__.py": "",
        },
    )
    report = _check(root)
    assert report.cycles == [
        "cycle pkg.engine -> pkg.helpers -> pkg.engine:\n"
        "    pkg/engine.py:1: pkg.engine imports pkg.helpers\n"
        "    pkg/helpers.py:7: pkg.helpers imports pkg.engine (lazy)"
    ]
    assert report.upward == []  # same layer: only the cycle rule sees it


def test_cycle_inside_a_subpackage_and_every_cycle_are_reported(tmp_path):
    root = _package(
        tmp_path,
        {
            "app.py": "from pkg.engine import x\n",
            "engine.py": "from pkg.app import y\n",  # also upward
            "helpers.py": "",
            "base.py": "",
            "data/__init__.py": "",
            "data/a.py": "from .b import x\n",
            "data/b.py": "from . import c\n",
            "data/c.py": "import pkg.data.a\n",
        },
    )
    cycles = _check(root).cycles
    assert [c.splitlines()[0] for c in cycles] == [
        "cycle pkg.app -> pkg.engine -> pkg.app:",
        "cycle pkg.data.a -> pkg.data.b -> pkg.data.c -> pkg.data.a:",
    ]
    assert "pkg/data/c.py:1: pkg.data.c imports pkg.data.a" in cycles[1]


def test_upward_imports_are_caught_wherever_they_sit(tmp_path):
    root = _package(
        tmp_path,
        {
            "app.py": "",
            "engine.py": "def late():\n    from pkg import app\n",
            "helpers.py": "",
            "base.py": """
                from typing import TYPE_CHECKING

                if TYPE_CHECKING:
                    from pkg.helpers import Helper
                """,
            "data/__init__.py": "",
            "data/reader.py": "from ..engine import late\n",
        },
    )
    assert _check(root).upward == [
        "pkg/base.py:5: pkg.base imports pkg.helpers (TYPE_CHECKING): pkg.base is in layer 0 "
        "bottom, pkg.helpers in layer 1 middle",
        "pkg/data/reader.py:1: pkg.data.reader imports pkg.engine: pkg.data.reader is in layer 0 "
        "bottom, pkg.engine in layer 1 middle",
        "pkg/engine.py:2: pkg.engine imports pkg.app (lazy): pkg.engine is in layer 1 middle, "
        "pkg.app in layer 2 top",
    ]


def test_from_package_import_submodule_names_the_submodule(tmp_path):
    root = _package(
        tmp_path,
        {
            "app.py": "",
            "engine.py": "",
            "helpers.py": "",
            "base.py": "from pkg import app, data\nfrom pkg.data import reader, NAME\n",
            "data/__init__.py": "NAME = 1\n",
            "data/reader.py": "",
        },
    )
    imported = [i.imported for i in collect_imports(root)]
    assert imported == ["pkg.app", "pkg.data", "pkg.data.reader", "pkg.data"]
    assert len(_check(root).upward) == 1


def test_unlisted_modules_and_unmatched_entries_are_caught(tmp_path):
    root = _package(
        tmp_path,
        {
            "app.py": "",
            "engine.py": "",
            "base.py": "",
            "stray.py": "",
            "data/__init__.py": "",
            "data/deep.py": "",  # covered by "data"
            "extra/__init__.py": "",
            "extra/inner.py": "",
        },
    )
    report = _check(root)
    assert report.unlisted == [
        "pkg/extra/__init__.py: module pkg.extra is in no layer of the table",
        "pkg/extra/inner.py: module pkg.extra.inner is in no layer of the table",
        "pkg/stray.py: module pkg.stray is in no layer of the table",
    ]
    assert report.unmatched == [
        "pkg/__init__.py:4: table entry 'helpers' (layer 1 middle) matches no module of pkg "
        "(no pkg/helpers.py or package)"
    ]


def test_top_init_and_dangling_imports_are_caught(tmp_path):
    root = _package(
        tmp_path,
        {
            "app.py": "from pkg.gone import x\nfrom ... import too_far\n",
            "engine.py": "",
            "helpers.py": "",
            "base.py": "",
            "data/__init__.py": "",
        },
        init=_TABLE + "from pkg import base\n",
    )
    report = _check(root)
    assert report.top_init == [
        "pkg/__init__.py:7: pkg imports pkg.base: the top-level __init__ must import nothing of pkg"
    ]
    assert report.dangling == [
        "pkg/app.py:1: pkg.app imports pkg.gone: there is no module pkg.gone",
        "pkg/app.py:2: pkg.app imports pkg ...: there is no module pkg ...",
    ]


def test_every_violation_is_in_the_one_message(tmp_path):
    root = _package(
        tmp_path,
        {
            "app.py": "",
            "engine.py": "",
            "helpers.py": "",
            "base.py": "import pkg.app\nimport pkg.engine\n",
            "data/__init__.py": "from pkg import helpers\n",
        },
    )
    message = _message("imports that go up a layer", _check(root).upward)
    assert message.startswith("3 imports that go up a layer:\n")
    for where in ("pkg/base.py:1", "pkg/base.py:2", "pkg/data/__init__.py:1"):
        assert where in message


def test_a_cycle_names_the_rest_of_its_tangle(tmp_path):
    root = _package(
        tmp_path,
        {
            "app.py": "",
            "engine.py": "import pkg.helpers\n",
            "helpers.py": "import pkg.engine\nimport pkg.base\n",
            "base.py": "def f():\n    from pkg import engine\n",  # also upward
            "data/__init__.py": "",
        },
    )
    assert _check(root).cycles == [
        "cycle pkg.base -> pkg.engine -> pkg.helpers -> pkg.base:\n"
        "    pkg/base.py:2: pkg.base imports pkg.engine (lazy)\n"
        "    pkg/engine.py:1: pkg.engine imports pkg.helpers\n"
        "    pkg/helpers.py:2: pkg.helpers imports pkg.base"
    ]
    cycles = import_cycles(
        collect_imports(
            _package(
                tmp_path / "two",
                {
                    "a.py": "import pkg.b\n",
                    "b.py": "import pkg.a\nimport pkg.c\n",
                    "c.py": "import pkg.a\n",
                },
            )
        )
    )
    assert cycles[0].splitlines()[0] == "cycle pkg.a -> pkg.b -> pkg.a (with pkg.a, pkg.b, pkg.c):"
