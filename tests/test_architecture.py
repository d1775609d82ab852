"""The shape of the package: an acyclic library under a thin commands layer.

The import graph of ``minigpt/`` is read with ``ast`` (nothing is imported), and must have
(a) no import cycle, (b) no library module that imports ``minigpt.commands`` or argparse, or calls
``sys.exit`` (only the commands layer, ``cli.py`` and ``__main__.py`` do), and (c) no import of the
package's own modules inside a function, unless the line (or the line above it) says why with a
``# deferred:`` comment: a heavy optional dependency, or in ``commands/`` the start-up time of ``--help``;
and (d) no import upwards through the layers commands -> course tooling -> language-model core -> utilities,
which CONTRIBUTING.md maps module by module (checked here too).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "minigpt"
ENTRY_POINTS = {"minigpt.cli", "minigpt.__main__"}  # with minigpt.commands.*: may parse arguments and exit
DEFERRED = "# deferred:"



@dataclass(frozen=True)
class Import:
    importer: str
    imported: str  # a module of this package, or an outside top-level name (argparse, torch, ...)
    line: int
    in_function: bool
    commented: bool  # a `# deferred:` comment on the line or the line above


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(importer: str, node: ast.ImportFrom, alias: str) -> str:
    """The module an ``ImportFrom`` names: ``from . import data`` -> minigpt.data, ``from .x import y`` -> minigpt.x."""
    is_package = MODULES[importer].name == "__init__.py"
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    submodule = f"{target}.{alias}"
    return submodule if submodule in MODULES else target


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(name: str) -> list[Import]:
    path = MODULES[name]
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found = []

    def commented(node) -> bool:
        span = lines[node.lineno - 2: node.end_lineno] if node.lineno > 1 else lines[: node.end_lineno]
        return any(DEFERRED in ln for ln in span)

    def visit(node, in_function: bool):
        block_commented = False  # one `# deferred:` comment covers the imports that directly follow it
        for child in ast.iter_child_nodes(node):
            if is_type_checking_block(child):
                continue  # annotations only: never executed
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                block_commented = block_commented or commented(child)
                for a in child.names:
                    if isinstance(child, ast.Import):
                        target = a.name
                    else:
                        target = resolve(name, child, a.name)
                    if not target.startswith("minigpt"):
                        target = target.split(".")[0]
                    found.append(Import(name, target, child.lineno, in_function, block_commented))
            else:
                block_commented = False
            visit(child, inner)

    visit(ast.parse(source), False)
    return found


ALL_IMPORTS = [imp for name in MODULES for imp in imports_of(name)]


def is_library(name: str) -> bool:
    return name not in ENTRY_POINTS and not (name == "minigpt.commands" or name.startswith("minigpt.commands."))


def graph(skip=frozenset()) -> dict[str, set[str]]:
    edges = {name: set() for name in MODULES}
    for imp in ALL_IMPORTS:
        if imp.imported in MODULES and imp.imported != imp.importer and (imp.importer, imp.imported) not in skip:
            edges[imp.importer].add(imp.imported)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state, stack = {}, []

    def dfs(u):
        state[u] = "open"
        stack.append(u)
        for v in sorted(edges[u]):
            if state.get(v) == "open":
                return stack[stack.index(v):] + [v]
            if v not in state and (cycle := dfs(v)):
                return cycle
        state[u] = "done"
        stack.pop()
        return None

    for u in sorted(edges):
        if u not in state and (cycle := dfs(u)):
            return cycle
    return None


def test_the_graph_reader_finds_a_planted_cycle_and_the_real_edges():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    edges = graph(skip=set())
    assert "minigpt.model" in edges["minigpt.train"] and "minigpt.config" in edges["minigpt.train"]
    assert "minigpt.ngram" in edges["minigpt.checks.lesson01"]  # `from ..ngram import ...` resolves
    assert "minigpt.data" in edges["minigpt.commands.bpe"]  # `from .. import data` resolves to the module


def test_the_library_has_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_library_module_imports_the_commands_or_argparse():
    bad = [f"{i.importer} line {i.line} imports {i.imported}" for i in ALL_IMPORTS
           if is_library(i.importer) and (i.imported == "argparse" or i.imported.startswith("minigpt.commands")
                                          or i.imported == "minigpt.cli")]
    assert bad == [], "command-line code belongs in minigpt/commands/: " + "; ".join(bad)


def test_no_library_module_exits_the_process():
    bad = []
    for name, path in MODULES.items():
        if not is_library(name):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            call = isinstance(node, ast.Call) and ast.unparse(node.func) in ("sys.exit", "exit", "quit", "os._exit")
            if call or (isinstance(node, ast.Raise) and node.exc is not None and "SystemExit" in ast.unparse(node.exc)):
                bad.append(f"{name} line {node.lineno}")
    assert bad == [], "only the commands layer ends the process (raise ValueError instead): " + "; ".join(bad)


def test_in_function_imports_of_the_package_say_why():
    bad = [f"{i.importer} line {i.line} imports {i.imported}" for i in ALL_IMPORTS
           if i.in_function and i.imported.startswith("minigpt") and not i.commented]
    assert bad == [], ("import at the top of the module, or say why it must wait with a `# deferred:` comment "
                       "(a heavy optional dependency; in commands/, the start-up time of --help): " + "; ".join(bad))


def test_the_commands_top_level_does_not_import_torch_modules():
    # The commands' top level may import only these torch-free parts of the library (checked again for
    # real in the next test): anything else would load torch for every --help.
    torch_free = {"minigpt.config", "minigpt.data", "minigpt.files", "minigpt.doctor", "minigpt.cli"}
    bad = [f"{i.importer} line {i.line} imports {i.imported}" for i in ALL_IMPORTS
           if not is_library(i.importer) and not i.in_function and i.imported.startswith("minigpt")
           and not i.imported.startswith("minigpt.commands") and i.imported not in torch_free]
    assert bad == [], "defer these into the handler (# deferred: ...): " + "; ".join(bad)


def test_help_of_every_command_does_not_import_torch():
    from minigpt.cli import build_parser

    def commands(parser, prefix=()):
        for action in parser._actions:
            for name, sub in getattr(action, "choices", None).items() if hasattr(action, "_name_parser_map") else []:
                yield (*prefix, name)
                yield from commands(sub, (*prefix, name))

    every = [[], *[list(c) for c in commands(build_parser())]]
    assert ["train"] in every and ["bpe", "train"] in every and ["exercises", "reset"] in every
    script = textwrap.dedent(f"""
        import contextlib, io, sys
        from minigpt.cli import main
        for argv in {every!r}:
            with contextlib.redirect_stdout(io.StringIO()) as out:
                try:
                    main([*argv, "--help"])
                except SystemExit:
                    pass
            assert "usage:" in out.getvalue(), argv
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "nbformat"))
        print("heavy:", heavy[:5])
    """)
    env_root = str(PACKAGE.parent)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=env_root,
                       env={**__import__("os").environ, "PYTHONPATH": env_root}, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "heavy: []", p.stdout


# The layers, top to bottom (CONTRIBUTING.md, "The house"): a module may import its own layer and the ones below.
COMMANDS, TOOLING, CORE, UTILITIES = 3, 2, 1, 0
TOOLING_MODULES = {"minigpt.exercises", "minigpt.progress", "minigpt.sandbox", "minigpt.doctor", "minigpt.bench",
                   "minigpt.gpu", "minigpt.editions"}
UTILITY_MODULES = {"minigpt", "minigpt.utils", "minigpt.files", "minigpt.i18n"}
LAYER_NAMES = {COMMANDS: "commands", TOOLING: "course tooling", CORE: "language-model core", UTILITIES: "utilities"}


def layer(name: str) -> int:
    if not is_library(name):
        return COMMANDS
    if name in TOOLING_MODULES or name == "minigpt.checks" or name.startswith("minigpt.checks."):
        return TOOLING
    return UTILITIES if name in UTILITY_MODULES else CORE  # a new module is core until CONTRIBUTING.md says otherwise


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    return [f"{a} ({LAYER_NAMES[layer(a)]}) imports {b} ({LAYER_NAMES[layer(b)]})"
            for a in sorted(edges) for b in sorted(edges[a]) if layer(b) > layer(a)]


def test_the_layer_rule_finds_a_planted_upward_import():
    assert upward_imports({"minigpt.model": {"minigpt.checks.lesson06"}, "minigpt.checks.lesson06": set()}) == [
        "minigpt.model (language-model core) imports minigpt.checks.lesson06 (course tooling)"]
    assert upward_imports({"minigpt.utils": {"minigpt.model"}, "minigpt.model": set()}) != []
    assert upward_imports({"minigpt.commands.train": {"minigpt.train", "minigpt.utils"}, "minigpt.progress":
                           {"minigpt.checks._core", "minigpt.data"}}) == []


def test_no_module_imports_a_layer_above_its_own():
    bad = upward_imports(graph())
    assert bad == [], "each layer imports only its own and the layers below (CONTRIBUTING.md): " + "; ".join(bad)


def test_contributing_maps_every_module_once_in_its_layer():
    text = (PACKAGE.parent / "CONTRIBUTING.md").read_text(encoding="utf-8")
    start = text.index("### The house")
    house = text[text.index("\n1. **", start): text.index("\n### ", start + 1)]
    sections = dict(re.findall(r"\n(\d)\. \*\*[^*]+\*\*(.*?)(?=\n\d\. \*\*|\Z)", house, flags=re.S))
    map_layer = {"2": COMMANDS, "3": TOOLING, "4": CORE, "5": UTILITIES}
    short = {n: "checks/" if n.startswith("minigpt.checks") else "commands/" if n.startswith("minigpt.commands")
             else n.split(".")[-1] for n in MODULES if n != "minigpt"}
    wrong = []
    for name, key in sorted(short.items()):
        found = [map_layer[number] for number, body in sections.items() if number in map_layer
                 for _ in range(body.count(f"`{key}`"))]
        if found != [layer(name)]:
            wrong.append(f"{key}: listed in {[LAYER_NAMES[f] for f in found]}, is {LAYER_NAMES[layer(name)]}")
    commands = sections["2"]
    wrong += [f"{n}: not named in the commands layer" for n in MODULES if n.startswith("minigpt.commands.")
              and not re.search(rf"\b{n.split('.')[-1]}\b", commands)]
    assert wrong == [], "CONTRIBUTING.md's map lists each module once, in its layer: " + "; ".join(wrong)
