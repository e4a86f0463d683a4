"""The package's import graph: layers import downwards only, and no module cycle, lazy imports included.

Walks every module's `import` statements with `ast` (those inside functions and `TYPE_CHECKING` blocks too),
so a cycle hidden in a lazy import is caught as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import prompt_retriever

PKG = Path(prompt_retriever.__file__).parent
NAME = "prompt_retriever"

# Bottom to top. A module may import from its own unit and from units of a lower layer, never from a
# unit of the same or a higher layer. `__init__` (the public face) sits on top: it only re-exports.
LAYERS: list[set[str]] = [
    {"_version", "errors", "escaping", "settings"},
    {"diskfull"},
    {"fileio", "fileread", "progress"},
    {"corpus", "llm", "feedback"},
    {"encoding", "golden"},
    {"search"},
    {"evaluation"},
    {"training", "serving"},
    {"pipeline"},
    {"cli"},
    {"__init__"},
]
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([NAME, *parts])


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """Package modules that `name` imports anywhere in its source."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith(NAME))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith(NAME):
                continue
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in known)
    resolved = set()
    for t in out:
        while t not in known and "." in t:  # `from .x import y` where x.y is not a module: the module is x
            t = t.rpartition(".")[0]
        if t in known and t != name:
            resolved.add(t)
    return resolved


def unit(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imported(name, path, known) for name, path in mods.items()}


def test_every_module_has_a_layer():
    assert {unit(m) for m in modules()} <= set(RANK), "add new top-level modules or subpackages to LAYERS"


def test_layers_import_downwards_only():
    wrong = []
    for src, targets in graph().items():
        for dst in targets:
            a, b = unit(src), unit(dst)
            if a != b and RANK[b] >= RANK[a]:
                wrong.append(f"{src} -> {dst}")
    assert not wrong, "imports against the layer order:\n" + "\n".join(sorted(wrong))


# Inside the packages of the top floors, the same rule one level down: a module imports only modules of a
# lower inner layer of its package (the CLI's command modules never import each other; each stage module
# of the pipeline only the ones it builds on).
INNER_LAYERS: dict[str, list[set[str]]] = {
    "cli": [
        {"output", "options"},
        {"app", "inputs"},
        {
            "corpus",
            "search",
            "queries",
            "evaluate",
            "train",
            "pipeline",
            "serve",
            "versions",
            "feedback",
            "experiments",
        },
        {"__init__"},
        {"__main__"},
    ],
    "pipeline": [
        {"config"},
        {"runner", "report", "stages_data"},
        {"stages_models"},
        {"stages_system"},
        {"stages"},
        {"__init__"},
    ],
    "serving": [
        {"asgi"},
        {"schemas", "batcher", "middleware", "connections", "metrics"},
        {"state", "guard"},
        {"live"},
        {"experiment"},  # the search route calls it
        {"routes", "admin", "watch"},
        {"events", "judging"},  # judging imports admin (check_token) and routes
        {"api"},
        {"server"},
        {"__init__"},
    ],
    "corpus": [
        {"prompt", "lines", "queries"},
        {"issues", "stats"},
        {"collector"},
        {"records", "tagged"},
        {"csvfile", "jsonl"},
        {"reader"},
        {"writer"},
        {"__init__"},
    ],
    "golden.importing": [
        {"report", "judgments", "undercount"},
        {"records"},
        {"pairs", "ragas"},
        {"importer"},
        {"__init__"},
    ],
}


def inner_module(package: str, name: str) -> str | None:
    """`name`'s module inside `package` (`cli.search` -> `search`, `cli` -> `__init__`), else None."""
    prefix = f"{NAME}.{package}"
    if name == prefix:
        return "__init__"
    if name.startswith(prefix + "."):
        return name[len(prefix) + 1 :].split(".")[0]
    return None


def test_every_module_of_the_top_floors_has_an_inner_layer():
    missing = []
    for package, layers in INNER_LAYERS.items():
        known = set().union(*layers)
        missing += [m for m in modules() if (inner := inner_module(package, m)) and inner not in known]
    assert not missing, "add these modules to INNER_LAYERS:\n" + "\n".join(sorted(missing))


def test_the_top_floors_import_downwards_inside_their_packages():
    wrong = []
    for package, layers in INNER_LAYERS.items():
        rank = {m: i for i, layer in enumerate(layers) for m in layer}
        for src, targets in graph().items():
            a = inner_module(package, src)
            for dst in targets:
                b = inner_module(package, dst)
                if a and b and a != b and rank.get(b, -1) >= rank.get(a, -1):
                    wrong.append(f"{src} -> {dst}")
    assert not wrong, "imports against the inner layer order:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    g = graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(g[n]):
            if state.get(m) == 1:
                cycles.append(" -> ".join(stack[stack.index(m) :] + [m]))
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(g):
        if n not in state:
            visit(n)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_walker_sees_lazy_relative_and_absolute_imports(tmp_path):
    src = tmp_path / "fake.py"
    src.write_text(
        "from __future__ import annotations\n"
        "import json\n"
        "from .models import x\n"
        "def f():\n"
        "    from ..fileio import atomic_dir\n"
        "    from .. import errors\n"
        "    import prompt_retriever.search.stores\n"
    )
    known = set(modules())
    got = imported(f"{NAME}.encoding.fake", src, known)
    assert got == {f"{NAME}.encoding.models", f"{NAME}.fileio", f"{NAME}.errors", f"{NAME}.search.stores", NAME}
