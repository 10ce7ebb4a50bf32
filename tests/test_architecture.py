"""The shape of the code, checked: rooms stay small, workflow functions short enough to read at once,
no import circle among the workflows, private names of dependencies only in their compat modules, and
printing only in the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "evalkit"


def _modules(folder: Path = PACKAGE) -> dict[str, Path]:
    return {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in sorted(folder.rglob("*.py"))}


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """``{module: {evalkit modules it imports}}``, counting imports inside functions too (a lazy
    import is still a dependency)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                deps.add(base)
                deps.update(f"{base}.{a.name}" for a in node.names)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def test_no_module_is_over_450_lines():
    big = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > 450}
    assert big == {}


def test_no_workflow_function_is_over_60_lines():
    long = []
    for p in (PACKAGE / "workflows").rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{p.name}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []


def test_no_import_circle_among_the_workflows():
    workflows = {n: p for n, p in _modules().items() if n.startswith("evalkit.workflows.")}
    graph = {n: {d for d in deps if d in workflows} for n, deps in import_graph(workflows | {}).items()}
    assert import_circles(graph) == []


@pytest.mark.parametrize("imports, expected", [
    ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
])
def test_import_circles_finds_cycles(imports, expected):
    assert import_circles(imports) == expected


def test_workflows_take_no_console_and_only_the_cli_prints():
    """Workflows report through events: no ``console`` parameter, and nothing under evalkit/ outside
    evalkit/cli imports rich or calls print()."""
    offenders = []
    for name, path in _modules().items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and name.startswith("evalkit.workflows"):
                if any(a.arg == "console" for a in node.args.args + node.args.kwonlyargs):
                    offenders.append(f"{name}.{node.name}(console=)")
            if name.startswith("evalkit.cli"):
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                offenders += [f"{name} imports {m}" for m in mods if m == "rich" or m.startswith("rich.")]
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{name}:{node.lineno} print()")
    assert offenders == []


def test_private_names_of_dependencies_only_in_compat_and_warmup_modules():
    allowed = {"torch_compat.py", "ray_compat.py", "mlflow_compat.py", "warmups.py", "exit_compat.py"}
    hits = [str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*.py") if p.name not in allowed
            for needle in ("_dynamo", "export._trace", "ray._private", "threading._shutdown") if needle in p.read_text()]
    assert hits == []


def test_cli_command_modules_do_not_import_each_other():
    """Command modules share evalkit.cli.app (the app, console, errors); only evalkit/cli/__init__.py
    registers them."""
    commands = {"evalkit.cli.commands", "evalkit.cli.datasets", "evalkit.cli.runs", "evalkit.cli.tune_command",
                "evalkit.cli.ui_command"}
    graph = import_graph(_modules(PACKAGE / "cli") | {"evalkit.cli.__init__": PACKAGE / "cli" / "__init__.py"})
    crossing = sorted(f"{m} -> {d}" for m in commands for d in graph.get(m, ()) if d in commands)
    assert crossing == []
