"""Settings, workload ids and cluster capacity of the llm_router evaluator.

A workload id is a serving workload (evaluators/serving/workload_id.py), the load levels, and optionally an
instance that runs at half speed (a degraded GPU, or an older one in a mixed fleet):

    <serving workload id>@<load>[,<load>...][/half=K]        e.g.  sharegpt:seed=3:n=1500:think=1@0.5,0.9/half=1

Load is a fraction of the cluster's capacity: the sum over instances of FCFS's goodput capacity on one
instance (evaluators/llm_scheduler/capacity.py: the rate at which FCFS meets both SLOs for 90% of requests),
a half-speed instance counting half. So 0.9 is 90% of what the cluster could serve with perfect balance.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from evaluators.base import ConfigError
from evaluators.params import parse_params
from evaluators.llm_scheduler.capacity import capacity, requests_at
from evaluators.llm_scheduler.setup import Settings as InstanceSettings, slo_for
from evaluators.serving.cluster import InstanceSpec
from evaluators.serving.engine import EngineConfig
from evaluators.serving.gpu import GpuModel, StepCost
from evaluators.serving.metrics import Slo
from evaluators.serving.migration import LINK_BANDWIDTH, MAX_MIGRATIONS
from evaluators.serving.policies import Fcfs
from evaluators.serving.requests import Requests

BLOCK_TOKENS = 512   # the prefix blocks the router sees (Mooncake's hash_ids)


@dataclass(frozen=True)
class Settings:
    """Evaluator params (problem.toml [evaluator.params])."""

    device: str = "h100"
    model: str = "llama-3-8b"
    instances: int = 4
    delay_s: float = 0.05
    token_budget: int = 8192
    max_running: int = 256
    problem_dir: str = ""

    @staticmethod
    def from_params(params: dict, problem_dir: str = "") -> "Settings":
        s = parse_params(Settings, params, "llm_router", problem_dir=str(problem_dir))
        if not 1 <= s.instances <= 64 or not 0 <= s.delay_s <= 10:
            raise ConfigError("llm_router params: instances must be in [1, 64] and delay_s in [0, 10]")
        return s

    @functools.cached_property
    def instance(self) -> InstanceSettings:
        return InstanceSettings(self.device, self.model, None, self.token_budget, self.max_running,
                                problem_dir=self.problem_dir)


@dataclass(frozen=True)
class Workload:
    id: str
    base: str
    kind: str
    loads: tuple[float, ...]
    half: int | None        # the instance at half speed, if any
    slo: Slo
    settings: Settings

    def speeds(self) -> list[float]:
        return [0.5 if k == self.half else 1.0 for k in range(self.settings.instances)]

    def instances(self) -> list[InstanceSpec]:
        gpu = self.settings.instance.gpu
        config = EngineConfig(token_budget=self.settings.token_budget, max_running=self.settings.max_running,
                              prefix_cache=True)
        return [InstanceSpec(_slowed(gpu, v), Fcfs, config) for v in self.speeds()]

    def capacity(self) -> float:
        return capacity(self.base, self.settings.instance) * sum(self.speeds())

    def requests(self, load: float) -> Requests:
        cap = self.capacity()
        r = requests_at(self.base, self.settings.instance, load * cap)
        return replace(r, name=f"{self.id} @ {load:g} x {cap:.3g} req/s")

    def init_config(self) -> dict:
        s = self.settings
        return {"instances": s.instances, "speeds": self.speeds(), "device": s.device, "model": s.model,
                "delay_s": s.delay_s, "link_bandwidth": LINK_BANDWIDTH, "max_migrations": MAX_MIGRATIONS,
                "kv_bytes_per_token": s.instance.gpu.kv_bytes_per_token, "block_tokens": BLOCK_TOKENS, "kv_tokens": s.instance.gpu.kv_tokens,
                "workload_class": self.kind, "slo_ttft_s": self.slo.ttft_s, "slo_tpot_s": self.slo.tpot_s}


def _slowed(gpu: GpuModel, speed: float) -> GpuModel:
    if speed == 1.0:
        return gpu
    c = gpu.step
    step = StepCost(*(v / speed for v in (c.fixed_s, c.token_s, c.sampled_s, c.pair_s, c.kv_read_s)))
    return replace(gpu, name=f"{gpu.name} at {speed:g}x", step=step)


@functools.lru_cache(maxsize=64)
def parse_workload(workload_id: str, settings: Settings) -> Workload:
    head, sep, tail = workload_id.partition("@")
    if not sep or not tail:
        raise ConfigError(f"llm_router workload ids look like <serving workload>@<load>[,...][/half=K], "
                          f"not '{workload_id}'")
    loads_text, _, option = tail.partition("/")
    try:
        loads = tuple(float(x) for x in loads_text.split(","))
    except ValueError:
        raise ConfigError(f"workload '{workload_id}': loads must be numbers, got '{loads_text}'") from None
    if not all(0 < x <= 10 for x in loads):
        raise ConfigError(f"workload '{workload_id}': each load must be in (0, 10]")
    half = None
    if option:
        if not option.startswith("half=") or not option[5:].isdigit():
            raise ConfigError(f"workload '{workload_id}': the only option is /half=K (an instance index)")
        half = int(option[5:])
        if half >= settings.instances:
            raise ConfigError(f"workload '{workload_id}': half={half} but there are {settings.instances} instances")
    kind = head.split(":", 1)[0]
    w = Workload(workload_id, head, kind, loads, half, slo_for(kind, settings.instance), settings)
    w.capacity()   # fails here, at spec load, if the workload cannot be measured
    return w
