"""Workload ids, load levels, SLOs and the reference capacity of the llm_scheduler evaluator.

Load levels are fractions of a capacity measured per workload (capacity.py).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from evaluators.base import ConfigError
from evaluators.params import parse_params
from evaluators.serving.engine import EngineConfig
from evaluators.serving.gpu import BLOCK_TOKENS, GpuModel, gpu_model
from evaluators.serving.metrics import Slo
from evaluators.serving.requests import Requests
from evaluators.serving.workload_id import TraceSpec, parse_workload_id

# SLOs per workload class for Llama-3-8B on one H100 (assumptions of this problem, in the range serving
# papers use: interactive chat ~1 s to first token, ~50 ms per token; long-context prompts get longer to
# the first token). On another model/GPU both scale with its lone decode step time against this one's.
SLOS = {
    "azure-conv": Slo(1.0, 0.05),
    "azure-code": Slo(2.0, 0.05),
    "sharegpt": Slo(2.0, 0.05),
    "mooncake": Slo(8.0, 0.10),
    "agent": Slo(2.0, 0.05),   # an agent waits on each turn: chat-like targets, longer prompts
}
DEFAULT_SLO = Slo(2.0, 0.05)
REFERENCE_DEVICE = ("h100", "llama-3-8b")


def _decode_step_s(gpu: GpuModel) -> float:
    return gpu.step.time(1, 1, 1001, 1000)   # one decode over 1,000 cached tokens


@dataclass(frozen=True)
class Settings:
    """Evaluator params (problem.toml [evaluator.params])."""

    device: str = "h100"
    model: str = "llama-3-8b"
    tp: int | None = None
    token_budget: int = 8192
    max_running: int = 256
    predictor_sigma: float = 0.7
    prefix_cache: bool = True   # vLLM's automatic prefix caching (on by default in vLLM V1)
    problem_dir: str = ""   # where relative trace paths resolve; set by make_evaluator, not a param

    @staticmethod
    def from_params(params: dict, problem_dir: Path | str = "") -> "Settings":
        return parse_params(Settings, params, "llm_scheduler", problem_dir=str(problem_dir))

    @functools.cached_property
    def gpu(self) -> GpuModel:
        return gpu_model(self.device, self.model, self.tp, token_budget=self.token_budget,
                         max_running=self.max_running)

    @functools.cached_property
    def slo_scale(self) -> float:
        return _decode_step_s(self.gpu) / _decode_step_s(gpu_model(*REFERENCE_DEVICE))


@dataclass(frozen=True)
class Workload:
    """A parsed workload id: the base requests and the load levels."""

    id: str
    base: str
    kind: str
    loads: tuple[float, ...]
    slo: Slo
    seed: int
    base_requests: Requests
    settings: Settings

    def engine_config(self) -> EngineConfig:
        s = self.settings
        return engine_config(s, self.seed)

    def init_config(self) -> dict:
        """The static facts the candidate's init(config) gets (never lengths, loads or arrivals)."""
        s = self.settings
        g = s.gpu
        return {"workload_class": self.kind, "model": s.model, "device": s.device, "gpu": g.name,
                "token_budget": s.token_budget, "max_running": s.max_running, "block_tokens": BLOCK_TOKENS,
                "kv_blocks_total": g.kv_blocks, "slo_ttft_s": self.slo.ttft_s, "slo_tpot_s": self.slo.tpot_s,
                "predictor_sigma": s.predictor_sigma}


@functools.lru_cache(maxsize=64)  # checked at spec load, then scored for every program: generate or read once
def parse_workload(workload_id: str, settings: Settings) -> Workload:
    base, sep, loads_text = workload_id.partition("@")
    if not sep or not loads_text:
        raise ConfigError(f"llm_scheduler workload ids look like <serving workload>@<load>[,<load>...], "
                          f"not '{workload_id}'")
    try:
        loads = tuple(float(x) for x in loads_text.split(","))
    except ValueError:
        raise ConfigError(f"workload '{workload_id}': loads must be numbers, got '{loads_text}'") from None
    if not all(0 < x <= 10 for x in loads):
        raise ConfigError(f"workload '{workload_id}': each load must be in (0, 10]")
    requests, seed = base_requests(base, settings.problem_dir)
    kind = base.split(":", 1)[0]
    return Workload(workload_id, base, kind, loads, slo_for(kind, settings), seed, requests, settings)


def slo_for(kind: str, settings: Settings) -> Slo:
    slo = SLOS.get(kind, DEFAULT_SLO)
    return Slo(slo.ttft_s * settings.slo_scale, slo.tpot_s * settings.slo_scale)


@functools.lru_cache(maxsize=64)
def base_requests(base: str, problem_dir: str) -> tuple[Requests, int]:
    """The serving workload for `base` (a generated workload, or a trace file relative to the problem) and
    its seed (generated at 1 request/s: the lengths do not depend on the rate)."""
    spec = parse_workload_id(base, Path(problem_dir) if problem_dir else None)
    if isinstance(spec, TraceSpec):
        return spec.load().requests, spec.seed
    if spec.load is not None or spec.rate_per_s is not None:
        raise ConfigError(f"workload '{base}': give the load levels after '@', not load=/rate= in the id")
    return spec.requests(1.0), spec.seed


def engine_config(s: Settings, seed: int) -> EngineConfig:
    return EngineConfig(token_budget=s.token_budget, max_running=s.max_running, predictor_sigma=s.predictor_sigma,
                        seed=seed, prefix_cache=s.prefix_cache)
