"""The EPLB evaluator: call the candidate on window i, validate, score the placement on window i+1."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from evaluators.base import ConfigError, Evaluator, InvalidOutput, WorkloadResult
from evaluators.eplb import workloads as wl
from evaluators.eplb.cost_model import Coefficients, score_window
from evaluators.eplb.settings import ExpertShape, Hardware
from evaluators.eplb.validate import validate
from sandbox.base import Candidate


@dataclass(frozen=True)
class Params:
    """[evaluator.params] of problem.toml. score = (1-w)*ideal/layer_time + w/(1 + runtime_ms/ref_ms)."""

    function: str = "rebalance_experts"
    runtime_weight: float = 0.1      # w; 0 makes the score fully deterministic
    runtime_ref_ms: float = 20.0     # runtime at which the speed term is 1/2
    runtime_repeats: int = 3         # timed calls on the first window; the median is runtime_ms
    windows: int = wl.Defaults.windows
    layers: int = wl.Defaults.layers
    drift: float = wl.Defaults.drift
    shift: float = wl.Defaults.shift
    window_tokens: int = wl.Defaults.window_tokens

    @staticmethod
    def parse(raw: dict[str, Any]) -> "Params":
        known = {f.name: f for f in fields(Params)}
        for k in raw:
            if k not in known:
                raise ConfigError(f"unknown EPLB param '{k}' (known: {', '.join(sorted(known))})")
        p = Params(**raw)
        for f in fields(Params):
            v = getattr(p, f.name)
            want = str if f.name == "function" else (float if isinstance(f.default, float) else int)
            if isinstance(v, bool) or not isinstance(v, (int, float) if want is float else want):
                raise ConfigError(f"EPLB param '{f.name}' must be {want.__name__}, got {v!r}")
        if not 0 <= p.runtime_weight <= 1 or p.runtime_ref_ms <= 0 or p.runtime_repeats < 1:
            raise ConfigError("EPLB params: runtime_weight in [0, 1], runtime_ref_ms > 0, runtime_repeats >= 1")
        if p.window_tokens < 1:
            raise ConfigError("EPLB param window_tokens must be >= 1")
        return p

    def defaults(self) -> wl.Defaults:
        return wl.Defaults(drift=self.drift, shift=self.shift, windows=self.windows, layers=self.layers,
                           window_tokens=self.window_tokens)


class EplbEvaluator(Evaluator):
    noisy_metrics = ("runtime_ms",)

    def __init__(self, params: Params, problem_dir: Path, shape: ExpertShape = ExpertShape(),
                 hardware: Hardware = Hardware()) -> None:
        self.params = params
        self.problem_dir = Path(problem_dir)
        self.shape = shape
        self.hardware = hardware
        self._cache: dict[str, wl.Workload] = {}

    def workload(self, workload_id: str) -> wl.Workload:
        if workload_id not in self._cache:
            self._cache[workload_id] = wl.build(workload_id, self.params.defaults(), self.problem_dir)
        return self._cache[workload_id]

    def check_workload(self, workload_id: str) -> None:
        self.workload(workload_id)

    def evaluate(self, candidate: Candidate, workload_id: str) -> WorkloadResult:
        w = self.workload(workload_id)
        s, p = w.setting, self.params
        coef = Coefficients.of(s, self.shape, self.hardware)
        windows = [None] * (len(w.loads) - 1)
        samples: list[float] = []
        for i in range(len(windows)):
            args = (w.loads[i].copy(), s.num_replicas, s.num_groups, s.num_nodes, s.num_gpus)
            if i == 0:
                result, samples = candidate.timed_call(p.function, *args, repeats=p.runtime_repeats)
            else:
                result = candidate.call(p.function, *args)
            try:
                placement = validate(result, w.loads.shape[1], s.num_experts, s.num_replicas)
            except InvalidOutput as e:
                raise InvalidOutput(f"window {i}: {e}") from None
            windows[i] = score_window(placement.phy2log, placement.logcnt, w.loads[i + 1], s, coef, self.shape.top_k)
        return self._result(workload_id, windows, [t * 1e3 for t in samples])

    def _result(self, workload_id: str, windows: list, runtime_ms: list[float]) -> WorkloadResult:
        p = self.params
        n = sum(x.layers for x in windows)
        max_load = sum(x.max_gpu_load for x in windows)
        balancedness = sum(x.mean_gpu_load for x in windows) / max_load if max_load > 0 else 1.0
        layer_time = sum(x.layer_time_s for x in windows) / n
        ideal = sum(x.ideal_time_s for x in windows) / n
        efficiency = min(1.0, ideal / layer_time) if layer_time > 0 else 1.0
        runtime = statistics.median(runtime_ms)
        speed = 1.0 / (1.0 + runtime / p.runtime_ref_ms)
        score = (1 - p.runtime_weight) * efficiency + p.runtime_weight * speed
        metrics = {
            "score": min(1.0, max(0.0, score)),
            "balancedness": balancedness,
            "layer_time_us": layer_time * 1e6,
            "ideal_layer_time_us": ideal * 1e6,
            "time_efficiency": efficiency,
            "runtime_ms": runtime,
        }
        return WorkloadResult(workload_id, metrics, {"runtime_ms": runtime_ms})
