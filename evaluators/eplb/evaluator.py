"""The EPLB evaluator: call the candidate on window i, validate, score the placement on window i+1's steps."""
from __future__ import annotations

import functools
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evaluators.base import ConfigError, Evaluator, WorkloadResult, located
from evaluators.eplb import workloads as wl
from evaluators.eplb.cost_model import Coefficients, Model, WindowScore, score_window
from evaluators.eplb.migration import fetched_pairs
from evaluators.eplb.replica_routing import ROUTINGS
from evaluators.eplb.settings import ExpertShape, Hardware
from evaluators.eplb.steps import WindowSample, rng_for, sample_window
from evaluators.eplb.validate import replica_slots, validate
from evaluators.params import parse_params
from sandbox.base import Candidate


@dataclass(frozen=True)
class Params:
    """[evaluator.params] of problem.toml.
    score = ((1-w)*ideal/layer_time*(1 - m*moved_share) + w/(1 + runtime_ms/ref_ms)), w = runtime_weight,
    m = migration_weight."""

    function: str = "rebalance_experts"
    runtime_weight: float = 0.1      # w; 0 makes the score fully deterministic
    runtime_ref_ms: float = 20.0     # runtime at which the speed term is 1/2
    migration_weight: float = 0.0    # m; the share of (GPU, expert) pairs a rebalance fetches costs m of it
    routing: str = field(default="even", metadata={"choices": ROUTINGS})  # an expert's tokens over its replicas
    micro_batches: int = 2           # 2: DeepSeek's overlap of one micro-batch's compute with the other's comm
    steps_per_window: int = 4        # sampled forward steps each placement is scored on
    routes_per_layer: int = 512      # sampled token routes per layer (how many nodes a token's experts span)
    windows: int = wl.Defaults.windows
    layers: int = wl.Defaults.layers
    drift: float = wl.Defaults.drift
    shift: float = wl.Defaults.shift
    window_tokens: int = wl.Defaults.window_tokens

    @staticmethod
    def parse(raw: Mapping[str, Any]) -> "Params":
        p = parse_params(Params, raw, "EPLB")
        if not 0 <= p.runtime_weight <= 1 or p.runtime_ref_ms <= 0:
            raise ConfigError("EPLB params: runtime_weight in [0, 1], runtime_ref_ms > 0")
        if not 0 <= p.migration_weight <= 1:
            raise ConfigError("EPLB param migration_weight must be in [0, 1]")
        if p.micro_batches not in (1, 2) or p.steps_per_window < 1 or p.routes_per_layer < 1:
            raise ConfigError("EPLB params: micro_batches 1 or 2, steps_per_window >= 1, routes_per_layer >= 1")
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
        # the score mixes in the measured runtime unless its weight is 0: then only runtime_ms is noisy
        self.noisy_metrics = ("runtime_ms", "score") if params.runtime_weight > 0 else ("runtime_ms",)
        self.problem_dir = Path(problem_dir)
        self.shape = shape
        self.hardware = hardware
        self.coef = Coefficients.of(shape, hardware)
        self.model = Model(params.routing, params.micro_batches, shape.top_k)
        self.workload = functools.cache(self._workload)   # both built once per process
        self.samples = functools.cache(self._samples)

    def _workload(self, workload_id: str) -> wl.Workload:
        return wl.build(workload_id, self.params.defaults(), self.problem_dir)

    def _samples(self, workload_id: str) -> list[WindowSample]:
        """The sampled steps of windows 1..W-1 (what placements made on windows 0..W-2 are scored on)."""
        w, p = self.workload(workload_id), self.params
        return [sample_window(w.loads[i], w.setting.num_groups, w.setting.step_tokens, self.shape.top_k,
                              self.shape.groups_per_token, p.steps_per_window, p.routes_per_layer,
                              rng_for(workload_id, i, 0))
                for i in range(1, len(w.loads))]

    def check_workload(self, workload_id: str) -> None:
        self.workload(workload_id)

    def prepare(self, workload_id: str) -> None:
        self.samples(workload_id)   # most of a first evaluation's time: 0.4 s of the train set's 0.8 s

    def evaluate(self, candidate: Candidate, workload_id: str) -> WorkloadResult:
        w = self.workload(workload_id)
        s, p = w.setting, self.params
        samples = self.samples(workload_id)
        windows: list[WindowScore] = []
        fetched: list[int] = []
        previous = None
        runtime_s: list[float] = []
        for i, sample in enumerate(samples):
            # a copy: the trusted loads never reach the candidate, and its process gets its own anyway.
            # Every window's call is timed once: distinct inputs, so remembering answers cannot shrink it.
            args = (w.loads[i].copy(), s.num_replicas, s.num_groups, s.num_nodes, s.num_gpus)
            result, spent = candidate.timed_call(p.function, *args)
            runtime_s += spent
            with located(f"window {i}"):
                placement = validate(result, w.loads.shape[1], s.num_experts, s.num_replicas)
            slots = replica_slots(placement.phy2log, placement.logcnt)
            windows.append(score_window(placement.phy2log, placement.logcnt, slots, sample, s, self.coef, self.model))
            if previous is not None:
                fetched.append(fetched_pairs(previous, placement.phy2log, s.num_experts, s.slots_per_gpu))
            previous = placement.phy2log
        moved_share = statistics.mean(fetched) / previous.size if fetched else 0.0
        return self._result(workload_id, windows, [t * 1e3 for t in runtime_s], fetched, moved_share)

    def _result(self, workload_id: str, windows: list[WindowScore], runtime_ms: list[float],
                fetched: list[int], moved_share: float) -> WorkloadResult:
        p = self.params
        n = sum(x.layers for x in windows)
        max_load = sum(x.max_gpu_load for x in windows)
        balancedness = sum(x.mean_gpu_load for x in windows) / max_load if max_load > 0 else 1.0
        layer_time = sum(x.layer_time_s for x in windows) / n
        ideal = sum(x.ideal_time_s for x in windows) / n
        comm = sum(x.comm_time_s for x in windows) / n
        efficiency = min(1.0, ideal / layer_time) if layer_time > 0 else 1.0
        runtime = statistics.median(runtime_ms)
        speed = 1.0 / (1.0 + runtime / p.runtime_ref_ms)
        score = (1 - p.runtime_weight) * efficiency * (1 - p.migration_weight * moved_share) \
            + p.runtime_weight * speed
        migration_gb = (statistics.mean(fetched) if fetched else 0.0) * self.shape.weight_bytes / 1e9
        metrics = {
            "score": min(1.0, max(0.0, score)),
            "balancedness": balancedness,
            "layer_time_us": layer_time * 1e6,
            "ideal_layer_time_us": ideal * 1e6,
            "time_efficiency": efficiency,
            "comm_time_us": comm * 1e6,
            "nodes_per_token": float(np.mean([x.nodes_per_token for x in windows])),
            "migration_gb": migration_gb,
            "moved_share": moved_share,
            "runtime_ms": runtime,
        }
        feedback = (f"balancedness {balancedness:.3f}; layer {layer_time * 1e6:.0f} us against an "
                    f"ideal {ideal * 1e6:.0f} us; the slowest GPU spends {comm * 1e6:.0f} us in dispatch+combine; "
                    f"a token's experts span {metrics['nodes_per_token']:.2f} nodes; each rebalance fetches "
                    f"{migration_gb:.1f} GB of expert weights; runtime {runtime:.1f} ms.")
        return WorkloadResult(workload_id, metrics, {"runtime_ms": runtime_ms}, feedback)
