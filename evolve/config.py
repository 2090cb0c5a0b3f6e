"""The one validated run configuration: defaults, then a TOML config file, then command-line flags.

Unknown keys are errors naming the file and the key. The resolved config is stored with the run, so
`adrs resume` continues with exactly the settings the run started with.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from evolve.search.archive import ArchiveConfig
from evolve.errors import AdrsError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SANDBOXES = ("local", "docker")
ORDERS = ("proposal", "completion")
EXECUTORS = ("local", "ray")   # or "ray://HOST:PORT": an existing Ray cluster through Ray Client


@dataclass(frozen=True)
class RunConfig:
    problem: str = "eplb"
    iterations: int = 100             # child iterations (the initial program is iteration 0)
    max_wall_time_s: float = 0.0      # 0: no wall-clock budget
    seed: int = 0
    proposals_in_flight: int = 1      # concurrent proposals (hides LLM latency)
    eval_slots: int = 2               # concurrent sandboxed evaluations
    sandbox: str = "local"
    runs_dir: str = "runs"
    db: str = ""                      # SQLAlchemy URL; default runs/<run-id>/lineage.db (SQLite)
    run_id: str = ""
    final_top_k: int = 1              # best programs scored on held-out at the end
    baseline_cache: bool = True       # reuse the initial program's and baselines' results (reference_cache)
    order: str = "proposal"           # commit order: proposal (reproducible) or completion (see controller)
    executor: str = "local"           # local: worker processes; ray: a Ray started for the run; ray://HOST:PORT
    ray_address: str = ""             # an existing Ray cluster (auto, HOST:PORT, ray://HOST:PORT); executor ray
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    # LLM proposer (evolve/llm/); no models: the offline mutator proposes
    models: tuple[str, ...] = ()      # litellm model strings, each optionally "model:weight"
    api_base: str = ""                # an OpenAI-compatible server (vLLM, Ollama, llama.cpp)
    max_cost: float = 0.0             # dollars; stop proposing at this spend (0: no budget)
    ensemble: str = "ucb"             # ucb | thompson (ignored when a model has an explicit weight)
    diff_ratio: float = 0.7           # prompt modes: SEARCH/REPLACE diff, full rewrite, crossover
    rewrite_ratio: float = 0.2
    crossover_ratio: float = 0.1
    llm_timeout_s: float = 0.0        # one HTTP request, wall clock; 0: from the model (evolve/llm/limits.py)
    llm_attempts: int = 5             # HTTP attempts per proposal (429/5xx/timeouts are retried)
    llm_backoff_s: float = 2.0        # first retry delay; doubles per consecutive failure, capped, jittered
    llm_max_tokens: int = 0           # tokens per answer; 0: from the model (evolve/llm/limits.py)
    llm_max_repeated_failures: int = 5  # stop after this many consecutive identical LLM failures (0: never)
    temperature: float = 0.8

    @property
    def lag(self) -> int:
        """Iterations in flight. Iteration i samples its parent right after iteration i-lag commits,
        which makes the lineage independent of timing (see controller)."""
        return self.proposals_in_flight + self.eval_slots

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "RunConfig":
        return build(json.loads(text), "stored run config")


def _check_value(where: str, name: str, value: Any, default: Any) -> Any:
    typ = type(default)
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if typ is tuple and isinstance(value, list):
        value = tuple(value)
    if not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
        raise AdrsError(f"{where}: {name}: must be {typ.__name__}, got {type(value).__name__}")
    return value


def _build_archive(raw: dict, where: str) -> ArchiveConfig:
    known = {f.name: f for f in fields(ArchiveConfig)}
    base = ArchiveConfig()
    kwargs = {}
    for k, v in raw.items():
        if k not in known:
            raise AdrsError(f"{where}: archive.{k}: unknown key (allowed: {', '.join(sorted(known))})")
        kwargs[k] = _check_value(where, f"archive.{k}", v, getattr(base, k))
    return ArchiveConfig(**kwargs)


def build(raw: dict, where: str, base: RunConfig | None = None) -> RunConfig:
    base = base or RunConfig()
    known = {f.name for f in fields(RunConfig)}
    kwargs: dict[str, Any] = {}
    for k, v in raw.items():
        if k not in known:
            raise AdrsError(f"{where}: {k}: unknown key (allowed: {', '.join(sorted(known))})")
        if k == "archive":
            if not isinstance(v, dict):
                raise AdrsError(f"{where}: archive: must be a table")
            merged = {**dataclasses.asdict(base.archive), **v}
            kwargs[k] = _build_archive(merged, where)
        else:
            kwargs[k] = _check_value(where, k, v, getattr(base, k))
    cfg = dataclasses.replace(base, **kwargs)
    validate(cfg, where)
    return cfg


def validate(cfg: RunConfig, where: str) -> None:
    def need(ok: bool, key: str, msg: str) -> None:
        if not ok:
            raise AdrsError(f"{where}: {key}: {msg}")

    need(cfg.iterations >= 0, "iterations", "must be >= 0")
    need(cfg.max_wall_time_s >= 0, "max_wall_time_s", "must be >= 0")
    need(cfg.proposals_in_flight >= 1, "proposals_in_flight", "must be >= 1")
    need(cfg.eval_slots >= 1, "eval_slots", "must be >= 1")
    need(cfg.final_top_k >= 1, "final_top_k", "must be >= 1")
    need(cfg.sandbox in SANDBOXES, "sandbox", f"must be one of {', '.join(SANDBOXES)}")
    need(cfg.order in ORDERS, "order", f"must be one of {', '.join(ORDERS)}")
    need(cfg.executor in EXECUTORS or re.fullmatch(r"ray://[^\s/:]+:\d+", cfg.executor) is not None, "executor",
         f"'{cfg.executor}' is not one of local, ray, ray://HOST:PORT")
    need(not cfg.ray_address or cfg.executor == "ray", "ray_address",
         f"an existing Ray cluster needs executor ray, not '{cfg.executor}'")
    _validate_llm(cfg, need)
    a = cfg.archive
    need(a.num_islands >= 1, "archive.num_islands", "must be >= 1")
    need(a.feature_bins >= 1, "archive.feature_bins", "must be >= 1")
    need(0 <= a.exploration_ratio and 0 <= a.exploitation_ratio
         and a.exploration_ratio + a.exploitation_ratio <= 1, "archive",
         "exploration_ratio and exploitation_ratio must be >= 0 and sum to <= 1")


ENSEMBLES = ("ucb", "thompson")


def _validate_llm(cfg: RunConfig, need) -> None:
    for m in cfg.models:
        try:
            parse_model_spec(m)
        except ValueError as e:
            need(False, "models", str(e))
    need(len({parse_model_spec(m)[0] for m in cfg.models}) == len(cfg.models), "models", "a model is listed twice")
    need(cfg.max_cost >= 0, "max_cost", "must be >= 0")
    need(cfg.ensemble in ENSEMBLES, "ensemble", f"must be one of {', '.join(ENSEMBLES)}")
    ratios = (cfg.diff_ratio, cfg.rewrite_ratio, cfg.crossover_ratio)
    need(min(ratios) >= 0 and sum(ratios) > 0, "diff_ratio", "diff/rewrite/crossover ratios must be >= 0, "
         "not all 0")
    need(cfg.llm_timeout_s >= 0, "llm_timeout_s", "must be >= 0 (0: from the model)")
    need(cfg.llm_attempts >= 1, "llm_attempts", "must be >= 1")
    need(cfg.llm_backoff_s >= 0, "llm_backoff_s", "must be >= 0")
    need(cfg.llm_max_tokens >= 0, "llm_max_tokens", "must be >= 0 (0: from the model)")
    need(cfg.llm_max_repeated_failures >= 0, "llm_max_repeated_failures", "must be >= 0 (0: never stop)")
    need(0 <= cfg.temperature <= 2, "temperature", "must be in [0, 2]")
    need(not cfg.api_base or cfg.api_base.startswith(("http://", "https://")), "api_base",
         "must be an http:// or https:// URL")


def load_file(path: Path, base: RunConfig | None = None) -> RunConfig:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise AdrsError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise AdrsError(f"{path}: not valid TOML: {e}") from None
    return build(raw, str(path), base)


def parse_model_spec(spec: str) -> tuple[str, float | None]:
    """'model' or 'model:weight' -> (model, weight or None). Model names may contain ':' (ollama tags)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a model must be a non-empty string, got {spec!r}")
    name, sep, tail = spec.strip().rpartition(":")
    if sep:
        try:
            weight = float(tail)
        except ValueError:
            return spec.strip(), None
        if not name or not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"'{spec}': the weight after ':' must be a positive number")
        return name, weight
    return spec.strip(), None
