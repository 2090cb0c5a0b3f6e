"""Reading an OpenEvolve problem folder: initial_program.py (with EVOLVE-BLOCK markers), evaluator.py
(`evaluate(program_path)`, optional `evaluate_stage1/2/3`), and the optional config.yaml, README.md and
requirements.txt. Everything is parsed, never imported: the evaluator runs only inside the sandbox.
Every error names the file and, where there is one, the line."""
from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from evolve.errors import AdrsError

INITIAL = "initial_program.py"
EVALUATOR = "evaluator.py"
CONFIG_NAMES = ("config.yaml", "config.yml")
START, END = "EVOLVE-BLOCK-START", "EVOLVE-BLOCK-END"
STAGES = ("evaluate_stage1", "evaluate_stage2", "evaluate_stage3")
ALWAYS_THERE = {"numpy", "msgpack", "openevolve"}  # in every sandbox (openevolve: the harness provides it)
# import name -> pip name, where they differ (the common ones evaluators use)
PIP_NAMES = {"sklearn": "scikit-learn", "yaml": "PyYAML", "cv2": "opencv-python", "PIL": "Pillow",
             "skimage": "scikit-image", "bs4": "beautifulsoup4", "dateutil": "python-dateutil"}


@dataclass(frozen=True)
class OpenEvolveFolder:
    path: Path
    initial: str                    # initial_program.py's text
    evaluator: str                  # evaluator.py's text, copied verbatim
    stages: tuple[str, ...]         # the evaluate_stageN functions it defines
    functions: tuple[str, ...]      # the candidate's top-level functions the evaluator refers to
    modules: tuple[str, ...]        # non-stdlib import names of the evaluator (checked in the sandbox)
    packages: tuple[str, ...]       # pip requirements: requirements.txt, plus the detected modules
    config: Path | None
    readme: str


def is_openevolve_folder(path: Path) -> bool:
    """An OpenEvolve problem folder: an evaluator or an initial program (read_folder names the one missing),
    and no problem.toml of ours."""
    return (path.is_dir() and ((path / EVALUATOR).is_file() or (path / INITIAL).is_file())
            and not (path / "problem.toml").exists())


def read_folder(path: Path) -> OpenEvolveFolder:
    path = Path(path)
    if not path.is_dir():
        raise AdrsError(f"{path}: not a folder")
    for name in (INITIAL, EVALUATOR):
        if not (path / name).is_file():
            raise AdrsError(f"{path}: no {name} (an OpenEvolve problem has {INITIAL} and {EVALUATOR})")
    initial, evaluator = (path / INITIAL).read_text(), (path / EVALUATOR).read_text()
    init_tree, ev_tree = _parse(path / INITIAL, initial), _parse(path / EVALUATOR, evaluator)
    _check_blocks(path / INITIAL, initial)
    defined = _top_level_functions(ev_tree)
    if "evaluate" not in defined:
        raise AdrsError(f"{path / EVALUATOR}: defines no top-level function evaluate(program_path) "
                        "(OpenEvolve calls it; a cascade's evaluate_stage1 does not replace it)")
    modules = _third_party_imports(ev_tree, path)
    config = next((path / n for n in CONFIG_NAMES if (path / n).is_file()), None)
    readme = (path / "README.md").read_text() if (path / "README.md").is_file() else ""
    return OpenEvolveFolder(
        path=path.resolve(), initial=initial, evaluator=evaluator,
        stages=tuple(s for s in STAGES if s in defined),
        functions=_called_functions(init_tree, ev_tree, path / INITIAL),
        modules=modules, packages=_packages(path, modules), config=config, readme=readme)


def _parse(file: Path, text: str) -> ast.Module:
    try:
        return ast.parse(text, filename=str(file))
    except SyntaxError as e:
        raise AdrsError(f"{file}, line {e.lineno}: not valid Python: {e.msg}") from None


def _check_blocks(file: Path, text: str) -> None:
    """At least one EVOLVE-BLOCK, its markers paired and in order (what the search may edit)."""
    depth, seen = 0, 0
    for n, line in enumerate(text.splitlines(), 1):
        if START in line:
            if depth:
                raise AdrsError(f"{file}, line {n}: {START} inside another block")
            depth, seen = 1, seen + 1
        elif END in line:
            if not depth:
                raise AdrsError(f"{file}, line {n}: {END} without a {START} before it")
            depth = 0
    if depth:
        raise AdrsError(f"{file}: a {START} is never closed by {END}")
    if not seen:
        raise AdrsError(f"{file}: no `# {START}` / `# {END}` markers: OpenEvolve evolves only the code "
                        "between them; mark the part to evolve")


def _top_level_functions(tree: ast.Module) -> set[str]:
    names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    for n in tree.body:  # `evaluate = make_evaluator(...)` counts too
        if isinstance(n, ast.Assign):
            names.update(t.id for t in n.targets if isinstance(t, ast.Name))
    return names


def _called_functions(init_tree: ast.Module, ev_tree: ast.Module, init_file: Path) -> tuple[str, ...]:
    """The candidate's top-level functions the evaluator names (`program.run()`, getattr(m, "run")): the
    ones a candidate must keep. None named: every top-level function of the initial program."""
    defs = [n.name for n in init_tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not defs:
        raise AdrsError(f"{init_file}: defines no top-level function for the evaluator to call")
    named = {n.attr for n in ast.walk(ev_tree) if isinstance(n, ast.Attribute)}
    named |= {n.value for n in ast.walk(ev_tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    used = tuple(d for d in defs if d in named)
    return used or tuple(defs)


def _third_party_imports(tree: ast.Module, folder: Path) -> tuple[str, ...]:
    found: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            found.update(a.name.split(".")[0] for a in n.names)
        elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
            found.add(n.module.split(".")[0])
    local = {p.stem for p in folder.glob("*.py")} | {p.name for p in folder.iterdir() if (p / "__init__.py").is_file()}
    siblings = sorted(found & local - {Path(EVALUATOR).stem, Path(INITIAL).stem})
    if siblings:  # only evaluator.py travels into the sandbox
        raise AdrsError(f"{folder / EVALUATOR}: imports {', '.join(siblings)} from its folder; only evaluator.py "
                        "is run in the sandbox: fold them into evaluator.py")
    return tuple(sorted(m for m in found if m not in sys.stdlib_module_names and m not in local
                        and m not in ALWAYS_THERE))


def _packages(folder: Path, modules: tuple[str, ...]) -> tuple[str, ...]:
    """requirements.txt's lines (comments, options and blank lines dropped), plus a pip name for every
    detected module that no line already names."""
    reqs: list[str] = []
    req = folder / "requirements.txt"
    if req.is_file():
        for n, line in enumerate(req.read_text().splitlines(), 1):
            line = line.split("#")[0].strip()
            if not line:
                continue
            if line.startswith("-"):
                raise AdrsError(f"{req}, line {n}: pip options ({line.split()[0]}) are not supported; "
                                "list package requirements only")
            reqs.append(line)
    named = {_req_name(r) for r in reqs}
    for m in modules:
        pip = PIP_NAMES.get(m, m)
        if _norm(pip) not in named:
            reqs.append(pip)
    return tuple(reqs)


def _req_name(requirement: str) -> str:
    return _norm(re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0])


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
