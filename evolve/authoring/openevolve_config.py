"""config.yaml of an OpenEvolve problem mapped to our settings, where a key has a meaning here.

Mapped: llm models and weights (or primary/secondary_model), temperature, api_base, max_tokens, timeout,
retries; max_iterations; random_seed; database.num_islands, migration_interval, exploration/exploitation
ratios, feature_bins; diff_based_evolution (false: full rewrites only); prompt.system_message; evaluator
timeout, memory_limit_mb, cascade_evaluation and cascade_thresholds. Every other key is listed, once, as
ignored; API keys are never copied anywhere. Defaults are OpenEvolve's where a key is absent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from evolve.errors import AdrsError

OPENAI_BASE = "https://api.openai.com/v1"  # OpenEvolve's default api_base: litellm's default too
DEFAULT_TIMEOUT_S = 300.0                  # OpenEvolve's evaluator.timeout
DEFAULT_THRESHOLDS = (0.5, 0.75, 0.9)      # OpenEvolve's evaluator.cascade_thresholds


@dataclass
class Mapped:
    run: dict[str, Any] = field(default_factory=dict)        # RunConfig keys (run.toml)
    system_message: str = ""
    timeout_s: float = DEFAULT_TIMEOUT_S
    memory_mb: int = 0                                        # 0: our default
    cascade: bool = True
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    ignored: list[str] = field(default_factory=list)          # dotted keys with no meaning here


def load_yaml(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise AdrsError(f"{path}{where}: not valid YAML: {problem}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise AdrsError(f"{path}: the top level must be a mapping of keys, not {type(raw).__name__}")
    return raw


class _Reader:
    """Takes keys out of a config, checks their types, and remembers what was left over (ignored)."""

    def __init__(self, path: Path, out: Mapped) -> None:
        self.path, self.out = path, out

    def take(self, table: dict, key: str, types: type | tuple, where: str) -> Any:
        if key not in table or table[key] is None:
            table.pop(key, None)
            return None
        v = table.pop(key)
        if isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise self.fail(f"{where}{key}", f"must be {_names(types)}, got a boolean")
        if not isinstance(v, types):
            raise self.fail(f"{where}{key}", f"must be {_names(types)}, got {type(v).__name__}")
        return v

    def fail(self, key: str, msg: str) -> AdrsError:
        return AdrsError(f"{self.path}: {key}: {msg}")

    def leftover(self, table: dict, where: str) -> None:
        for k, v in table.items():
            secret = "key" in str(k).lower()
            if isinstance(v, dict) and v and not secret:
                self.leftover(v, f"{where}{k}.")
            else:
                self.out.ignored.append(f"{where}{k}" + (" (never copied)" if secret else ""))


def _names(types: type | tuple) -> str:
    ts = types if isinstance(types, tuple) else (types,)
    return " or ".join({int: "a number", float: "a number", str: "text", bool: "true/false", list: "a list",
                        dict: "a mapping"}[t] for t in ts if t is not int or float not in ts)


def map_config(path: Path | None) -> Mapped:
    out = Mapped()
    if path is None:
        return out
    raw = load_yaml(path)
    r = _Reader(path, out)
    if (lang := r.take(raw, "language", str, "")) and lang.lower() != "python":
        raise r.fail("language", f"'{lang}': only Python problems can be imported")
    if (it := r.take(raw, "max_iterations", int, "")) is not None:
        out.run["iterations"] = it
    if (seed := r.take(raw, "random_seed", int, "")) is not None:
        out.run["seed"] = seed
    if r.take(raw, "diff_based_evolution", bool, "") is False:  # full rewrites only (and crossover)
        out.run.update(diff_ratio=0.0, rewrite_ratio=0.9, crossover_ratio=0.1)
    for name, table in (("llm", _llm), ("database", _database), ("evaluator", _evaluator), ("prompt", _prompt)):
        sub = r.take(raw, name, dict, "")
        if sub is not None:
            table(dict(sub), r, f"{name}.")
    r.leftover(raw, "")
    return out


def _llm(t: dict, r: _Reader, w: str) -> None:
    run, num = r.out.run, (int, float)
    models = [_model(m, r, f"{w}models[{i}].") for i, m in enumerate(r.take(t, "models", list, w) or [])]
    for role, default in (("primary", 1.0), ("secondary", 0.2)):
        name = r.take(t, f"{role}_model", str, w)
        weight = r.take(t, f"{role}_model_weight", num, w)
        if name and (weight is None or weight > 0):
            models.append(f"{name}:{float(weight if weight is not None else default):g}")
    if models:
        run["models"] = models
    if (temp := r.take(t, "temperature", num, w)) is not None:
        if not 0 <= temp <= 2:
            raise r.fail(f"{w}temperature", f"{temp} is outside [0, 2]")
        run["temperature"] = float(temp)
    if (base := r.take(t, "api_base", str, w)) and base.rstrip("/") != OPENAI_BASE:
        run["api_base"] = base
    if (tokens := r.take(t, "max_tokens", int, w)) is not None:
        run["llm_max_tokens"] = tokens
    if (timeout := r.take(t, "timeout", num, w)) is not None:
        run["llm_timeout_s"] = float(timeout)
    if (retries := r.take(t, "retries", int, w)) is not None:
        run["llm_attempts"] = retries + 1
    if (msg := r.take(t, "system_message", str, w)) and msg != "system_message":
        r.out.system_message = r.out.system_message or msg
    r.leftover(t, w)


def _model(m: Any, r: _Reader, w: str) -> str:
    if not isinstance(m, dict):
        raise r.fail(w.rstrip("."), "must be a mapping with a name")
    m = dict(m)
    name = r.take(m, "name", str, w)
    if not name:
        raise r.fail(f"{w}name", "missing")
    weight = r.take(m, "weight", (int, float), w)
    if weight is not None and not (math.isfinite(weight) and weight > 0):
        raise r.fail(f"{w}weight", "must be a positive number")
    r.leftover(m, w)
    return f"{name}:{float(weight):g}" if weight is not None else name


def _database(t: dict, r: _Reader, w: str) -> None:
    archive: dict[str, Any] = {}
    for key, ours, typ in (("num_islands", "num_islands", int), ("migration_interval", "migration_interval", int),
                           ("exploration_ratio", "exploration_ratio", (int, float)),
                           ("exploitation_ratio", "exploitation_ratio", (int, float))):
        if (v := r.take(t, key, typ, w)) is not None:
            archive[ours] = float(v) if typ is not int else v
    bins = t.get("feature_bins")
    if isinstance(bins, int) and not isinstance(bins, bool):
        archive["feature_bins"] = r.take(t, "feature_bins", int, w)
    if (seed := r.take(t, "random_seed", int, w)) is not None:
        r.out.run.setdefault("seed", seed)
    if archive:
        r.out.run["archive"] = archive
    r.leftover(t, w)


def _evaluator(t: dict, r: _Reader, w: str) -> None:
    num = (int, float)
    if (timeout := r.take(t, "timeout", num, w)) is not None:
        if not timeout > 0:
            raise r.fail(f"{w}timeout", "must be positive")
        r.out.timeout_s = float(timeout)
    if (mem := r.take(t, "memory_limit_mb", int, w)) is not None:
        r.out.memory_mb = mem
    if (cascade := r.take(t, "cascade_evaluation", bool, w)) is not None:
        r.out.cascade = cascade
    if (th := r.take(t, "cascade_thresholds", list, w)) is not None:
        if not all(isinstance(x, num) and not isinstance(x, bool) for x in th):
            raise r.fail(f"{w}cascade_thresholds", "must be a list of numbers")
        r.out.thresholds = tuple(float(x) for x in th)
    r.leftover(t, w)


def _prompt(t: dict, r: _Reader, w: str) -> None:
    if (msg := r.take(t, "system_message", str, w)) and msg != "system_message":
        r.out.system_message = msg
    r.leftover(t, w)
