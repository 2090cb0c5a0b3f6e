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
from evolve.terms import Split
from evolve.toml_tables import TomlTables
from sandbox.base import Limits

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "problems"
SPLITS = (Split.TRAIN.value, Split.HELD_OUT.value)  # the splits a user can ask for
# What `adrs problems` groups by; a closed list so that listings stay comparable across problems.
FAMILIES = ("scheduling", "load balancing", "placement", "networking", "data layout", "repair", "other")
# Who computes the score. "sandboxed-evaluator": an imported evaluator (OpenEvolve format) runs inside the sandbox
# next to the candidate, so its scores are only as honest as that evaluator and the candidate beside it.
TRUST = ("trusted-evaluator", "sandboxed-evaluator")
ENTRY_POINT_GROUP = "adrs.problems"  # installed packages ship problems through this entry-point group
# [verify] kinds: a real measurement of a program's decisions, run by `adrs verify` (evolve/run/verify.py)
VERIFIERS = ("moe_microbench",)


@dataclass(frozen=True)
class EntryFunction:
    """One function the evaluator may call: its name, signature and a one-line meaning (shown in prompts)."""

    name: str
    signature: str = ""
    doc: str = ""

    def describe(self) -> str:
        sig = self.signature or f"{self.name}()"
        return f"{sig}: {self.doc}" if self.doc else sig


@dataclass(frozen=True)
class Entry:
    """The candidate file and every function the evaluator may call in it (checked before any workload)."""

    file: str
    functions: tuple[EntryFunction, ...]

    @property
    def function(self) -> str:
        """The first (for one-function problems, the only) entry function."""
        return self.functions[0].name

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.functions)


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
    runtime: str = ""                # optional: the metric timing the algorithm itself (end-of-run line)
    runtime_at_equal: str = ""       # optional: the quality metric that runtime comparison holds equal


@dataclass(frozen=True)
class VerifySpec:
    """[verify]: the real measurement `adrs verify` runs on a program's decisions (one of VERIFIERS)."""

    kind: str
    workloads: tuple[str, ...]   # ids the decisions are taken on (default: the first held-out workload)
    windows: int = 1             # decisions per workload that are measured (the first ones)
    layers: int = 4              # layers sampled per measured decision
    cpu_token_divisor: int = 64  # on the CPU (no CUDA), a step's tokens are divided by this (tiny shapes)


@dataclass(frozen=True)
class Resources:
    """[resources]: what one evaluation worker needs; the Ray executor places its actors by this."""

    cpus: float = 1.0
    memory_mib: int = 0   # 0: no reservation
    gpus: float = 0.0     # a fraction (< 1) shares a GPU; above 1, whole GPUs


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
    family: str = "other"  # one of FAMILIES
    trust: str = "trusted-evaluator"  # one of TRUST
    verify: VerifySpec | None = None  # [verify]; None: the problem has no real verifier
    resources: Resources = field(default_factory=Resources)  # [resources]

    @property
    def sandboxed_evaluator(self) -> bool:
        return self.trust == "sandboxed-evaluator"

    @property
    def path(self) -> Path:
        return self.directory / "problem.toml"

    def initial_source(self) -> str:
        return (self.directory / self.entry.file).read_text()

    def baseline_sources(self) -> dict[str, str]:
        return {name: (self.directory / rel).read_text() for name, rel in sorted(self.baselines.items())}

    def workload_ids(self, split: str) -> tuple[str, ...]:
        return self.workloads.train if split == Split.TRAIN else self.workloads.held_out

    def make_evaluator(self):
        from evaluators.base import load_problem_evaluator

        ref = self.evaluator
        file = self.directory / ref.file if ref.file else None
        return load_problem_evaluator(ref.module, file, dict(ref.params), self.directory)


def bundled_problems() -> list[Path]:
    return sorted(p.parent for p in BUNDLED_DIR.glob("*/problem.toml"))


def installed_problems() -> dict[str, tuple[Path, str]]:
    """Problems shipped by installed packages through the `adrs.problems` entry-point group:
    name -> (problem folder, distribution). An entry point names a package or module whose folder holds
    problem.toml (`my_problem = "my_pkg.my_problem"`), or an attribute that is that folder's path."""
    import importlib.metadata
    import importlib.util

    found: dict[str, tuple[Path, str]] = {}
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist.name if getattr(ep, "dist", None) else "?"
        try:
            if ep.attr:
                folder = Path(ep.load())
            else:
                mod = importlib.util.find_spec(ep.module)
                if mod is None or (mod.origin is None and not mod.submodule_search_locations):
                    continue
                folder = Path(mod.origin).parent if mod.origin else Path(list(mod.submodule_search_locations)[0])
        except Exception:  # noqa: BLE001 - a broken package must not hide the others; `adrs problems` says so
            folder = Path(f"<cannot load {ep.value}>")
        found.setdefault(ep.name, (folder, dist))
    return found


def resolve(name_or_path: str) -> Path:
    """A bundled problem's name, an installed one's (entry point `adrs.problems`), or a path to a problem
    folder or its problem.toml."""
    p = Path(name_or_path)
    if p.is_file() and p.name == "problem.toml":
        return p.parent.resolve()
    if p.is_dir() and (p / "problem.toml").is_file():
        return p.resolve()
    if p.is_dir():
        raise AdrsError(f"{p}: no problem.toml in this folder")
    if "/" not in name_or_path and (BUNDLED_DIR / name_or_path / "problem.toml").is_file():
        return (BUNDLED_DIR / name_or_path).resolve()
    installed = installed_problems() if "/" not in name_or_path else {}
    if name_or_path in installed:
        folder, dist = installed[name_or_path]
        if not (folder / "problem.toml").is_file():
            raise AdrsError(f"problem '{name_or_path}' of package {dist}: no problem.toml in {folder}")
        return folder.resolve()
    names = ", ".join([d.name for d in bundled_problems()] + sorted(installed))
    raise AdrsError(f"unknown problem '{name_or_path}': not a bundled problem ({names}) nor a problem folder")


def load(name_or_path: str | Path, check_evaluator: bool = True) -> ProblemSpec:
    directory = resolve(str(name_or_path))
    path = directory / "problem.toml"
    text = path.read_text()
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise AdrsError(f"{path}: not valid TOML: {e}") from None
    spec = _build(raw, directory, TomlTables(path, text))
    _check_files(spec)
    if check_evaluator:
        _check_evaluator(spec)
    return spec


def _build(raw: dict, directory: Path, c: TomlTables) -> ProblemSpec:
    c.only(raw, {"name", "description", "family", "trust", "prompt", "entry", "evaluator", "workloads", "objective",
                 "limits", "baselines", "sandbox", "verify", "resources"}, "")
    entry_t = c.table(raw, "entry")
    c.only(entry_t, {"file", "function", "signature", "doc", "functions"}, "entry")
    ev_t = c.table(raw, "evaluator")
    c.only(ev_t, {"module", "file", "params"}, "evaluator")
    if ("module" in ev_t) == ("file" in ev_t):
        raise c.fail("evaluator", "give exactly one of 'module' (dotted name) or 'file' (path in the problem)")
    wl_t = c.table(raw, "workloads")
    c.only(wl_t, {"train", "held_out", "quick"}, "workloads")
    obj_t = c.table(raw, "objective")
    c.only(obj_t, {"score", "metrics", "runtime", "runtime_at_equal"}, "objective")
    metrics = c.get(obj_t, "metrics", dict, "objective", {})
    for m, d in metrics.items():
        if d not in ("max", "min"):
            raise c.fail(f"objective.metrics.{m}", "direction must be \"max\" or \"min\"")
    for key in ("runtime", "runtime_at_equal"):
        if key in obj_t and c.get(obj_t, key, str, "objective") not in metrics:
            raise c.fail(f"objective.{key}", f"'{obj_t[key]}' is not one of objective.metrics")
    if "runtime_at_equal" in obj_t and "runtime" not in obj_t:
        raise c.fail("objective.runtime_at_equal", "needs objective.runtime (the metric it holds equal for)")
    lim_t = c.table(raw, "limits", required=False)
    lim_fields = {f.name: f for f in fields(Limits)}
    if "candidate_timeout_s" in lim_t:  # renamed when each workload got its own fresh candidate
        raise c.fail("limits.candidate_timeout_s", "renamed to workload_timeout_s: every workload now runs in a "
                     "fresh candidate, and this is its wall-clock budget")
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
    family = c.get(raw, "family", str, "", "other")
    if family not in FAMILIES:
        raise c.fail("family", f"'{family}' is not one of: {', '.join(FAMILIES)}")
    trust = c.get(raw, "trust", str, "", TRUST[0])
    if trust not in TRUST:
        raise c.fail("trust", f"'{trust}' is not one of: {', '.join(TRUST)}")
    return ProblemSpec(
        name=c.get(raw, "name", str, ""),
        description=c.get(raw, "description", str, ""),
        prompt=c.get(raw, "prompt", str, "", "README.md"),
        directory=directory,
        entry=Entry(file=c.get(entry_t, "file", str, "entry", "initial.py"), functions=_entry_functions(entry_t, c)),
        evaluator=EvaluatorRef(module=ev_t.get("module"), file=ev_t.get("file"),
                               params=c.get(ev_t, "params", dict, "evaluator", {})),
        workloads=Workloads(train=train, held_out=held_out, quick=quick),
        objective=Objective(score=c.get(obj_t, "score", str, "objective"), metrics=dict(metrics),
                            runtime=obj_t.get("runtime", ""), runtime_at_equal=obj_t.get("runtime_at_equal", "")),
        limits=limits,
        baselines=dict(base_t),
        sandbox_packages=packages,
        family=family,
        trust=trust,
        verify=_verify(c.table(raw, "verify", required=False), held_out, c),
        resources=_resources(c.table(raw, "resources", required=False), c),
    )


def _resources(t: dict, c: TomlTables) -> Resources:
    c.only(t, {"cpus", "memory_mib", "gpus"}, "resources")
    r = Resources(c.get(t, "cpus", float, "resources", 1.0), c.get(t, "memory_mib", int, "resources", 0),
                  c.get(t, "gpus", float, "resources", 0.0))
    if r.cpus <= 0:
        raise c.fail("resources.cpus", "must be positive")
    if r.memory_mib < 0:
        raise c.fail("resources.memory_mib", "must be >= 0 (0: no reservation)")
    if r.gpus < 0 or (r.gpus > 1 and not r.gpus.is_integer()):
        raise c.fail("resources.gpus", "must be >= 0, and a whole number above 1")
    return r


def _verify(t: dict, held_out: tuple[str, ...], c: TomlTables) -> VerifySpec | None:
    if not t:
        return None
    c.only(t, {"kind", "workloads", "windows", "layers", "cpu_token_divisor"}, "verify")
    kind = c.get(t, "kind", str, "verify")
    if kind not in VERIFIERS:
        raise c.fail("verify.kind", f"'{kind}' is not one of: {', '.join(VERIFIERS)}")
    ints = {k: c.get(t, k, int, "verify", getattr(VerifySpec, k))
            for k in ("windows", "layers", "cpu_token_divisor")}
    for k, v in ints.items():
        if v < 1:
            raise c.fail(f"verify.{k}", "must be at least 1")
    workloads = c.str_list(t, "workloads", "verify", required=False) or held_out[:1]
    return VerifySpec(kind, workloads, **ints)


def _entry_functions(entry_t: dict, c: TomlTables) -> tuple[EntryFunction, ...]:
    """`function`/`signature`/`doc` for one function, or a list `functions` of {name, signature, doc}."""
    if "functions" not in entry_t:
        return (EntryFunction(c.get(entry_t, "function", str, "entry"), c.get(entry_t, "signature", str, "entry", ""),
                              c.get(entry_t, "doc", str, "entry", "")),)
    for k in ("function", "signature", "doc"):
        if k in entry_t:
            raise c.fail(f"entry.{k}", "give either function/signature/doc for one function or entry.functions, not both")
    items = c.get(entry_t, "functions", list, "entry")
    out: list[EntryFunction] = []
    for i, item in enumerate(items):
        where = f"entry.functions[{i}]"
        if not isinstance(item, dict):
            raise c.fail(where, "must be a table {name, signature, doc}")
        c.only(item, {"name", "signature", "doc"}, where)
        name = c.get(item, "name", str, where)
        if not name.isidentifier() or name in {f.name for f in out}:
            raise c.fail(f"{where}.name", f"'{name}' is not a Python identifier or is declared twice")
        out.append(EntryFunction(name, c.get(item, "signature", str, where, ""), c.get(item, "doc", str, where, "")))
    if not out:
        raise c.fail("entry.functions", "declare at least one function")
    return tuple(out)


def defined_functions(source: str) -> set[str]:
    """Top-level function names, found by parsing (never importing) the source."""
    tree = ast.parse(source)
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _check_files(spec: ProblemSpec) -> None:
    c = TomlTables(spec.path)
    files = {"entry.file": spec.entry.file, **{f"baselines.{k}": v for k, v in spec.baselines.items()}}
    for key, rel in files.items():
        f = spec.directory / rel
        if not f.is_file():
            raise c.fail(key, f"file not found: {f}")
        try:
            names = defined_functions(f.read_text())
        except SyntaxError as e:
            raise c.fail(key, f"{f} is not valid Python: {e.msg} (line {e.lineno})") from None
        missing = [n for n in spec.entry.names if n not in names]
        if missing:
            raise c.fail(key, f"{f} does not define the entry point{'s' if len(missing) > 1 else ''} "
                              f"{', '.join(n + '()' for n in missing)}")


def _check_evaluator(spec: ProblemSpec) -> None:
    from evaluators.base import ConfigError

    c = TomlTables(spec.path)
    try:
        ev = spec.make_evaluator()
    except ConfigError as e:
        raise c.fail("evaluator", str(e)) from None
    except ImportError as e:
        raise c.fail("evaluator", f"cannot import: {e}") from None
    except Exception as e:  # noqa: BLE001 - an author's module failing as it loads: one line, not a traceback
        raise c.fail("evaluator", f"cannot import or build: {type(e).__name__}: {e}") from None
    for key, ids in (("workloads.train", spec.workloads.train), ("workloads.held_out", spec.workloads.held_out),
                     ("workloads.quick", spec.workloads.quick),
                     ("verify.workloads", spec.verify.workloads if spec.verify else ())):
        for wid in ids:
            try:
                ev.check_workload(wid)
            except ConfigError as e:
                raise c.fail(key, f"'{wid}': {e}") from None
