"""Workload ids, load levels, SLOs and the reference capacity of the llm_scheduler evaluator.

Load is relative: the requests of a workload are generated once (evaluators/serving/workloads.py), the
capacity of the reference policy (built-in FCFS) is measured on the same requests all arriving at t = 0
(completion rate between the 10% and 90% completion marks, leaving out the fill and the drain), and for
load L the arrival times are scaled so the mean offered rate is L x capacity. Scaling keeps the arrival
process's shape (its CV, its bursts) and the lengths, so levels differ only in how hard they push.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from evaluators.base import ConfigError
from evaluators.serving.engine import EngineConfig, simulate
from evaluators.serving.gpu import BLOCK_TOKENS, GpuModel, gpu_model
from evaluators.serving.metrics import Slo
from evaluators.serving.policies import Fcfs
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
    problem_dir: str = ""   # where relative trace paths resolve; set by make_evaluator, not a param

    @staticmethod
    def from_params(params: dict, problem_dir: Path | str = "") -> "Settings":
        unknown = set(params) - set(Settings.__dataclass_fields__) | ({"problem_dir"} & set(params))
        if unknown:
            raise ConfigError(f"unknown llm_scheduler params: {', '.join(sorted(unknown))}")
        return Settings(**params, problem_dir=str(problem_dir))

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
        return EngineConfig(token_budget=s.token_budget, max_running=s.max_running,
                            predictor_sigma=s.predictor_sigma, seed=self.seed)

    def init_config(self) -> dict:
        """The static facts the candidate's init(config) gets (never lengths, loads or arrivals)."""
        s = self.settings
        g = s.gpu
        return {"workload_class": self.kind, "model": s.model, "device": s.device, "gpu": g.name,
                "token_budget": s.token_budget, "max_running": s.max_running, "block_tokens": BLOCK_TOKENS,
                "kv_blocks_total": g.kv_blocks, "slo_ttft_s": self.slo.ttft_s, "slo_tpot_s": self.slo.tpot_s,
                "predictor_sigma": s.predictor_sigma}

    def requests(self, load: float) -> Requests:
        cap = capacity(self.base, self.settings)
        r = self.base_requests
        span = float(r.arrival_s[-1] - r.arrival_s[0])
        if span <= 0:   # everything at once: nothing to scale
            return r
        offered = (len(r) - 1) / span
        arrival = (r.arrival_s - r.arrival_s[0]) * (offered / (load * cap))
        return replace(r, arrival_s=arrival, name=f"{r.name} @ {load:g} x {cap:.2f} req/s")


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
    requests, seed = _base_requests(base, settings.problem_dir)
    kind = base.split(":", 1)[0]
    slo = SLOS.get(kind, DEFAULT_SLO)
    slo = Slo(slo.ttft_s * settings.slo_scale, slo.tpot_s * settings.slo_scale)
    return Workload(workload_id, base, kind, loads, slo, seed, requests, settings)


@functools.lru_cache(maxsize=64)
def _base_requests(base: str, problem_dir: str) -> tuple[Requests, int]:
    """The serving workload for `base` (a generated workload, or a trace file relative to the problem) and
    its seed. Generated lengths do not depend on the rate, so the workload is made once at 1 request/s and
    the load levels rescale its arrivals (see Workload.requests)."""
    spec = parse_workload_id(base, Path(problem_dir) if problem_dir else None)
    if isinstance(spec, TraceSpec):
        return spec.load().requests, spec.seed
    if spec.load is not None or spec.rate_per_s is not None:
        raise ConfigError(f"workload '{base}': give the load levels after '@', not load=/rate= in the id")
    return spec.requests(1.0), spec.seed


@functools.lru_cache(maxsize=64)
def capacity(base: str, settings: Settings) -> float:
    """Requests/s the reference policy (built-in FCFS) completes with every request of `base` waiting."""
    r, seed = _base_requests(base, settings.problem_dir)
    n = len(r)
    saturated = replace(r, arrival_s=np.zeros(n))
    config = EngineConfig(token_budget=settings.token_budget, max_running=settings.max_running,
                          predictor_sigma=settings.predictor_sigma, seed=seed)
    done = np.sort(simulate(saturated, settings.gpu, Fcfs(), config).records.finish_s)
    lo, hi = int(0.1 * n), int(0.9 * n)
    if hi <= lo or done[hi] <= done[lo]:
        raise ConfigError(f"workload '{base}' is too small to measure a capacity ({n} requests)")
    return (hi - lo) / (done[hi] - done[lo])
