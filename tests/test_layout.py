"""The layout says what may import what: these tests read every import (lazy ones inside functions too)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# evolve/ from bottom to top: a module may import its own layer and the layers below it, never above.
LAYERS = [
    ("evolve.errors", "evolve.rng", "evolve.terms", "evolve.toml_tables", "evolve.problem"),
    ("evolve.store",),
    ("evolve.search",),
    ("evolve.config",),
    ("evolve.llm",),
    ("evolve.run",),
    ("evolve.report",),
    ("evolve.authoring",),
    ("evolve.cli",),
]
# Code that runs inside the sandbox may import only these (no simulator, no scoring, no evolve/).
SANDBOX_SIDE = ("sandbox/runner.py", "sandbox/protocol.py", "sandbox/container_boot.py")
SANDBOX_SIDE_OK = ("sandbox.protocol", "sandbox.runner", "sandbox.state_mirror", "numpy", "msgpack")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, modules: dict | None = None) -> set[str]:
    """Every module named by an import statement anywhere in the file, as written (absolute).
    `from pkg import sub` names pkg.sub only, when that is a module of `modules`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names}
            names.update(subs)  # `from evolve import x`
            if modules is None or not subs <= set(modules):
                names.add(node.module)
    return names


def _sources(*folders: str) -> dict[str, Path]:
    return {_module_name(p): p for f in folders for p in sorted((ROOT / f).rglob("*.py"))}


def _layer(module: str) -> int | None:
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


def test_evolve_imports_only_downwards():
    bad = []
    for mod, path in _sources("evolve").items():
        mine = _layer(mod)
        if mine is None:
            continue
        for imp in _imports(path):
            theirs = _layer(imp)
            if theirs is not None and theirs > mine:
                bad.append(f"{mod} (layer {mine}) imports {imp} (layer {theirs})")
    assert not bad, "\n".join(sorted(bad))


def test_every_evolve_module_has_a_layer():
    loose = [m for m in _sources("evolve") if m != "evolve" and _layer(m) is None]
    assert not loose, f"add these to LAYERS (or move them into a layer's package): {loose}"


def test_trusted_packages_do_not_import_the_search():
    bad = [f"{mod} imports {imp}" for mod, path in _sources("sandbox", "evaluators").items()
           for imp in _imports(path) if imp == "evolve" or imp.startswith("evolve.")]
    bad += [f"{mod} imports {imp}" for mod, path in _sources("sandbox").items()
            for imp in _imports(path) if imp.startswith("evaluators")]
    assert not bad, "\n".join(bad)


def test_code_inside_the_sandbox_imports_only_what_the_image_has():
    import sys
    stdlib = set(sys.stdlib_module_names)
    bad = []
    for rel in SANDBOX_SIDE:
        for imp in _imports(ROOT / rel):
            top = imp.split(".")[0]
            if top in stdlib or top == "__future__" or imp in SANDBOX_SIDE_OK or imp == "sandbox":
                continue
            if any(imp == ok or imp.startswith(ok + ".") for ok in SANDBOX_SIDE_OK):
                continue
            bad.append(f"{rel} imports {imp}")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    mods = _sources("evolve", "evaluators", "sandbox")
    graph = {m: sorted(i for i in _imports(p, mods) if i in mods and i != m) for m, p in mods.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in graph[m]:
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)
