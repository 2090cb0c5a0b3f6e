"""A problem spec: problems/<name>/problem.toml loaded into a typed, validated object.

Unknown keys are errors (a typo must not silently fall back to a default); every message names the file
and the key. The trusted side never imports candidate code, so the entry point is checked by parsing.
"""
from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from evolve.errors import AdrsError
from sandbox.base import Limits

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "problems"
SPLITS = ("train", "held-out")


@dataclass(frozen=True)
class Entry:
    file: str
    function: str
    signature: str = ""


@dataclass(frozen=True)
class EvaluatorRef:
    module: str | None
    file: str | None
    params: dict[str, Any]


@dataclass(frozen=True)
class Workloads:
    train: tuple[str, ...]
    held_out: tuple[str, ...]
    quick: tuple[str, ...]  # cascade: cheap check before the full train set


@dataclass(frozen=True)
class Objective:
    score: str                       # metric to maximise; bounded, higher is better
    metrics: dict[str, str]          # metric -> "max" | "min", for display and features


@dataclass(frozen=True)
class ProblemSpec:
    name: str
    description: str
    directory: Path
    entry: Entry
    evaluator: EvaluatorRef
    workloads: Workloads
    objective: Objective
    limits: Limits
    baselines: dict[str, str] = field(default_factory=dict)  # name -> path relative to directory
    prompt: str = "README.md"
    sandbox_packages: tuple[str, ...] = ()  # [sandbox] packages: extra pip requirements for the Docker image

    @property
    def path(self) -> Path:
        return self.directory / "problem.toml"

    def initial_source(self) -> str:
        return (self.directory / self.entry.file).read_text()

    def baseline_sources(self) -> dict[str, str]:
        return {name: (self.directory / rel).read_text() for name, rel in sorted(self.baselines.items())}

    def workload_ids(self, split: str) -> tuple[str, ...]:
        return self.workloads.train if split == "train" else self.workloads.held_out

    def make_evaluator(self):
        from evaluators.base import load_problem_evaluator

        ref = self.evaluator
        file = self.directory / ref.file if ref.file else None
        return load_problem_evaluator(ref.module, file, dict(ref.params), self.directory)


def bundled_problems() -> list[Path]:
    return sorted(p.parent for p in BUNDLED_DIR.glob("*/problem.toml"))


def resolve(name_or_path: str) -> Path:
    """A bundled problem's name, or a path to a problem folder or its problem.toml."""
    p = Path(name_or_path)
    if p.is_file() and p.name == "problem.toml":
        return p.parent.resolve()
    if p.is_dir() and (p / "problem.toml").is_file():
        return p.resolve()
    if p.is_dir():
        raise AdrsError(f"{p}: no problem.toml in this folder")
    if "/" not in name_or_path and (BUNDLED_DIR / name_or_path / "problem.toml").is_file():
        return (BUNDLED_DIR / name_or_path).resolve()
    names = ", ".join(d.name for d in bundled_problems())
    raise AdrsError(f"unknown problem '{name_or_path}': not a bundled problem ({names}) nor a problem folder")


def load(name_or_path: str | Path, check_evaluator: bool = True) -> ProblemSpec:
    directory = resolve(str(name_or_path))
    path = directory / "problem.toml"
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise AdrsError(f"{path}: not valid TOML: {e}") from None
    spec = _build(raw, directory, _Ctx(path))
    _check_files(spec)
    if check_evaluator:
        _check_evaluator(spec)
    return spec


class _Ctx:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, msg: str) -> AdrsError:
        return AdrsError(f"{self.path}: {key}: {msg}")

    def table(self, raw: dict, key: str, required: bool = True) -> dict:
        if key not in raw:
            if required:
                raise self.fail(key, "missing required table")
            return {}
        v = raw[key]
        if not isinstance(v, dict):
            raise self.fail(key, "must be a table")
        return v

    def only(self, raw: dict, allowed: set[str], where: str) -> None:
        for k in raw:
            if k not in allowed:
                name = f"{where}.{k}" if where else k
                raise self.fail(name, f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def get(self, raw: dict, key: str, typ: type | tuple, where: str, default: Any = ...) -> Any:
        name = f"{where}.{key}" if where else key
        if key not in raw:
            if default is ...:
                raise self.fail(name, "missing required key")
            return default
        v = raw[key]
        if typ is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, typ) or isinstance(v, bool) and typ is not bool:
            tname = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
            raise self.fail(name, f"must be {tname}, got {type(v).__name__}")
        return v

    def str_list(self, raw: dict, key: str, where: str, required: bool = True) -> tuple[str, ...]:
        v = self.get(raw, key, list, where, ... if required else [])
        if not all(isinstance(x, str) for x in v):
            raise self.fail(f"{where}.{key}", "must be a list of strings")
        return tuple(v)


def _build(raw: dict, directory: Path, c: _Ctx) -> ProblemSpec:
    c.only(raw, {"name", "description", "prompt", "entry", "evaluator", "workloads", "objective", "limits",
                 "baselines", "sandbox"}, "")
    entry_t = c.table(raw, "entry")
    c.only(entry_t, {"file", "function", "signature"}, "entry")
    ev_t = c.table(raw, "evaluator")
    c.only(ev_t, {"module", "file", "params"}, "evaluator")
    if ("module" in ev_t) == ("file" in ev_t):
        raise c.fail("evaluator", "give exactly one of 'module' (dotted name) or 'file' (path in the problem)")
    wl_t = c.table(raw, "workloads")
    c.only(wl_t, {"train", "held_out", "quick"}, "workloads")
    obj_t = c.table(raw, "objective")
    c.only(obj_t, {"score", "metrics"}, "objective")
    metrics = c.get(obj_t, "metrics", dict, "objective", {})
    for m, d in metrics.items():
        if d not in ("max", "min"):
            raise c.fail(f"objective.metrics.{m}", "direction must be \"max\" or \"min\"")
    lim_t = c.table(raw, "limits", required=False)
    lim_fields = {f.name: f for f in fields(Limits)}
    c.only(lim_t, set(lim_fields), "limits")
    limits = Limits(**{k: c.get(lim_t, k, (int, float), "limits") for k in lim_t})
    for k in lim_t:
        if getattr(limits, k) <= 0:
            raise c.fail(f"limits.{k}", "must be positive")
    base_t = c.table(raw, "baselines", required=False)
    for k in base_t:
        c.get(base_t, k, str, "baselines")
    train = c.str_list(wl_t, "train", "workloads")
    held_out = c.str_list(wl_t, "held_out", "workloads")
    if not train or not held_out:
        raise c.fail("workloads", "train and held_out must each name at least one workload")
    overlap = sorted(set(train) & set(held_out))
    if overlap:
        raise c.fail("workloads", f"held-out workloads also in train: {', '.join(overlap)}")
    quick = c.str_list(wl_t, "quick", "workloads", required=False) or train[:1]
    sandbox_t = c.table(raw, "sandbox", required=False)
    c.only(sandbox_t, {"packages"}, "sandbox")
    packages = c.str_list(sandbox_t, "packages", "sandbox", required=False)
    return ProblemSpec(
        name=c.get(raw, "name", str, ""),
        description=c.get(raw, "description", str, ""),
        prompt=c.get(raw, "prompt", str, "", "README.md"),
        directory=directory,
        entry=Entry(file=c.get(entry_t, "file", str, "entry", "initial.py"),
                    function=c.get(entry_t, "function", str, "entry"),
                    signature=c.get(entry_t, "signature", str, "entry", "")),
        evaluator=EvaluatorRef(module=ev_t.get("module"), file=ev_t.get("file"),
                               params=c.get(ev_t, "params", dict, "evaluator", {})),
        workloads=Workloads(train=train, held_out=held_out, quick=quick),
        objective=Objective(score=c.get(obj_t, "score", str, "objective"), metrics=dict(metrics)),
        limits=limits,
        baselines=dict(base_t),
        sandbox_packages=packages,
    )


def defined_functions(source: str) -> set[str]:
    """Top-level function names, found by parsing (never importing) the source."""
    tree = ast.parse(source)
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _check_files(spec: ProblemSpec) -> None:
    c = _Ctx(spec.path)
    files = {"entry.file": spec.entry.file, **{f"baselines.{k}": v for k, v in spec.baselines.items()}}
    for key, rel in files.items():
        f = spec.directory / rel
        if not f.is_file():
            raise c.fail(key, f"file not found: {f}")
        try:
            names = defined_functions(f.read_text())
        except SyntaxError as e:
            raise c.fail(key, f"{f} is not valid Python: {e.msg} (line {e.lineno})") from None
        if spec.entry.function not in names:
            raise c.fail(key, f"{f} does not define the entry point {spec.entry.function}()")


def _check_evaluator(spec: ProblemSpec) -> None:
    from evaluators.base import ConfigError

    c = _Ctx(spec.path)
    try:
        ev = spec.make_evaluator()
    except ConfigError as e:
        raise c.fail("evaluator", str(e)) from None
    except ImportError as e:
        raise c.fail("evaluator", f"cannot import: {e}") from None
    for split, ids in (("train", spec.workloads.train), ("held_out", spec.workloads.held_out),
                       ("quick", spec.workloads.quick)):
        for wid in ids:
            try:
                ev.check_workload(wid)
            except ConfigError as e:
                raise c.fail(f"workloads.{split}", f"'{wid}': {e}") from None
