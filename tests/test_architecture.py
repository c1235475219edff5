"""The layout keeps its promises: `domain/` is pure (no I/O, web, SQL or thread imports, and
nothing of the other packages), and the top-level packages import each other without a
cycle (domain <- persistence <- projections <- replay <- api)."""

from __future__ import annotations

import ast
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api.app import create_app

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("domain", "persistence", "projections", "replay", "api")
# What a pure domain may not import: I/O, the web, databases, concurrency.
IMPURE = {
    "sqlalchemy", "psycopg", "sqlite3", "fastapi", "starlette", "uvicorn", "httpx", "os",
    "io", "pathlib", "socket", "subprocess", "threading", "queue", "asyncio", "tempfile",
    "shutil", "time", "random", "logging",
}  # fmt: skip


def imports(path: Path) -> set[str]:
    """The top-level names of every module `path` imports (function-local imports too)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_the_domain_is_pure() -> None:
    for path in sorted((ROOT / "domain").rglob("*.py")):
        found = imports(path)
        assert not found & IMPURE, (path.name, found & IMPURE)
        assert not found & (set(PACKAGES) - {"domain"}), (path.name, found)


def test_top_level_packages_import_without_a_cycle() -> None:
    edges: dict[str, set[str]] = {p: set() for p in PACKAGES}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            edges[package] |= (imports(path) & set(PACKAGES)) - {package}
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(p: str, trail: tuple[str, ...]) -> None:
        if state.get(p) == "done":
            return
        assert state.get(p) != "open", f"import cycle: {' -> '.join((*trail, p))}"
        state[p] = "open"
        for q in sorted(edges[p]):
            visit(q, (*trail, p))
        state[p] = "done"
        order.append(p)

    for p in PACKAGES:
        visit(p, ())
    assert order.index("domain") < order.index("persistence") < order.index("api")


def test_the_benchmark_route_exists_only_when_asked(client: TestClient, container: Any) -> None:
    assert client.post("/noop").status_code == 404
    bench = create_app(settings=replace(container.settings, bench_noop=True), container=container)
    with TestClient(bench) as cl:
        assert cl.post("/noop").json() == {"ok": True}


def test_the_wheel_ships_what_a_user_runs() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    shipped = set(config["tool"]["setuptools"]["packages"])
    assert "bench" not in shipped and "tests" not in shipped
    assert {p for p in PACKAGES} <= shipped


# The sizes a newcomer can read: a module on a few screens, a function on one.
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def test_modules_and_functions_stay_small() -> None:
    too_big: list[str] = []
    for package in (*PACKAGES, "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text()
            name = path.relative_to(ROOT)
            if source.count("\n") > MAX_MODULE_LINES:
                too_big.append(f"{name}: {source.count(chr(10))} lines")
            tree = ast.parse(source)
            if ast.get_docstring(tree) is None:
                too_big.append(f"{name}: no docstring saying what the module owns")
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        too_big.append(f"{name}: {node.name}() {length} lines")
    assert not too_big, "\n".join(too_big)
