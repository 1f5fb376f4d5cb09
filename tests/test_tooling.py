"""The project's own checks, run with the tests so that CI keeps them green."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing() -> None:
    """ruff, configured in pyproject.toml, reports no problem in bulkprov or the tests."""
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "bulkprov", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:]


def test_ruff_format_is_kept() -> None:
    """The code is as `ruff format` writes it (bulkprov, the tests and the benchmarks)."""
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "bulkprov", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:]


def test_mypy_strict_passes() -> None:
    """mypy --strict, configured in pyproject.toml, accepts the bulkprov package."""
    out = subprocess.run(
        [sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout[-3000:]


MODULE_LINES = 800  # a module past this is split by concept
FUNCTION_LINES = 80  # a function past this is split into named parts


def _sources() -> list[Path]:
    return sorted((ROOT / "bulkprov").rglob("*.py"))


def test_no_module_is_over_its_size() -> None:
    """Every module of bulkprov is at most 800 lines."""
    over = {
        str(p.relative_to(ROOT)): n
        for p in _sources()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MODULE_LINES
    }
    assert over == {}


def test_no_function_is_over_its_size() -> None:
    """Every function of bulkprov, methods and nested functions included, is at most 80
    lines from its `def` to its last line."""
    import ast

    over = {}
    for p in _sources():
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > FUNCTION_LINES:
                    over[f"{p.relative_to(ROOT)}:{node.lineno} {node.name}"] = lines
    assert over == {}


def test_no_import_cycle() -> None:
    """No module of bulkprov imports, at its top level or inside a function, a module that
    imports it back (imports under `if TYPE_CHECKING:` are left out: they never run)."""
    import ast

    names = {}
    for p in _sources():
        parts = p.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names[name] = p
    edges: dict[str, set[str]] = {n: set() for n in names}
    for name, p in names.items():
        package = name if p.name == "__init__.py" else name.rpartition(".")[0]
        for node in _runtime_imports(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = package
                for _ in range(max(node.level - 1, 0)):
                    base = base.rpartition(".")[0]
                mod = (
                    (f"{base}.{node.module}" if node.module else base)
                    if node.level
                    else (node.module or "")
                )
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            edges[name].update(t for t in targets if t in names and t != name)
    cycles = _cycles(edges)
    assert cycles == [], cycles


def _runtime_imports(tree: object) -> list[object]:
    import ast

    found: list[object] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for orelse in child.orelse:
                    visit(orelse)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            visit(child)

    assert isinstance(tree, ast.AST)
    visit(tree)
    return found


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
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

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_cycles() -> None:
    """The check above can fail: a two-module and a three-module cycle are found, a chain is
    not."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
