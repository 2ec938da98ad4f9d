"""Print rlft's module import graph, each module's layer and size; exit 1 listing any import cycle.

    python scripts/import_graph.py

Read from the source (ast), so nothing is imported. Every rlft import counts, also one inside a function
(`import rlft.x`, `from rlft import x`, `from rlft.x import y`, `from . import x`): an import deferred to dodge a
cycle is still a cycle (STYLE.md item 9).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rlft"

# Layers, top to bottom (STYLE.md item 9): a module imports only from its own layer or below.
LAYERS = {
    "cli": 1,  # the `rlft` command
    "run": 2,  # run orchestration: parse -> validate -> each stage -> eval -> summary
    "evaluation": 3, "compare": 3, "plan": 3, "rewards_check": 3,  # tools that read recipes and run folders
    "reward_server": 3,  # a tool that serves rewards
}
NAMES = {1: "cli", 2: "run", 3: "tools", 4: "stages", 5: "core"}


def layer(module: str) -> int:
    """1 cli, 2 run, 3 tools, 4 stages (rlft/stages/), 5 core (everything else)."""
    return 4 if module == "stages" or module.startswith("stages.") else LAYERS.get(module, 5)


def modules() -> dict[str, Path]:
    """'stages.sft' -> rlft/stages/sft.py ('stages' for the package's __init__); rlft/__init__.py left out."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts:
            found[".".join(parts)] = path
    return found


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The rlft modules that `path` imports, anywhere in the file."""
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join((["rlft"] + package)[: len(package) + 2 - node.level])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            # `from rlft.stages import sft` imports the module stages.sft; `from rlft.x import y` the module x
            candidates = [f"{base}.{a.name}" if f"{base}.{a.name}".removeprefix("rlft.") in known else base
                          for a in node.names]
        else:
            continue
        for full in candidates:
            if full.startswith("rlft."):
                short = full[len("rlft."):]
                while short and short not in known:
                    short = short.rpartition(".")[0]
                if short and short != name:
                    targets.add(short)
    return targets


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a lower layer into a higher one."""
    return [f"{a} ({NAMES[layer(a)]}) -> {b} ({NAMES[layer(b)]})" for a in sorted(graph) for b in sorted(graph[a])
            if layer(b) < layer(a)]


def main() -> int:
    found = modules()
    graph = {name: imports(path, name, set(found)) for name, path in found.items()}
    width = max(map(len, found))
    for name in sorted(found, key=lambda n: (layer(n), n)):
        lines = len(found[name].read_text().splitlines())
        deps = ", ".join(sorted(graph[name])) or "-"
        print(f"{layer(name)} {NAMES[layer(name)]:<6} {name:<{width}} {lines:>4}  -> {deps}")
    problems = [f"cycle: {' <-> '.join(c)}" for c in cycles(graph)]
    problems += [f"upward import: {u}" for u in upward(graph)]
    total = sum(len(p.read_text().splitlines()) for p in found.values())
    print(f"{len(found)} modules, {total} lines; layer 1 imports 2..5, 2 imports 3..5, ..., never upward")
    for problem in problems:
        print(problem)
    if not problems:
        print("no cycle, no upward import")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
