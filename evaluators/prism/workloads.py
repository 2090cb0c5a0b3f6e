"""Prism placement workloads: batches of random cases in the style of the ADRS problem's 50-case set.

Id: `seed<N>[:cases<C>][:gpus<LO>-<HI>]` (defaults: 50 cases, GPU counts in [5, 10)). Per case, from
numpy default_rng([seed, case]): gpu_num ~ U{LO .. HI-1}; 2 x gpu_num models; size_gb ~ U[10, 30),
req_rate ~ U[1, 10), slo ~ U[5, 10); every GPU has 80 GB.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from evaluators.base import ConfigError

GPU_MEM_GB = 80.0
MODELS_PER_GPU = 2
SIZE_GB = (10.0, 30.0)
REQ_RATE = (1.0, 10.0)
SLO = (5.0, 10.0)
DEFAULT_CASES = 50
DEFAULT_GPUS = (5, 10)       # [lo, hi)
MAX_CASES = 1000
MAX_GPUS = 64


@dataclass(frozen=True)
class Case:
    gpu_num: int
    gpu_mem_gb: float
    size_gb: np.ndarray      # [models] float64
    req_rate: np.ndarray     # [models] float64
    slo: np.ndarray          # [models] float64

    @property
    def models(self) -> int:
        return len(self.size_gb)

    @property
    def weight(self) -> np.ndarray:
        """Each model's share of the KV pressure numerator, req_rate / slo."""
        return self.req_rate / self.slo


@dataclass(frozen=True)
class Workload:
    id: str
    cases: tuple[Case, ...]


def parse_id(wid: str) -> tuple[int, int, tuple[int, int]]:
    """(seed, cases, (gpus lo, gpus hi)); ConfigError naming the part that is wrong."""
    fields: dict[str, str] = {}
    for tok in wid.split(":"):
        m = re.fullmatch(r"(seed|cases)([0-9]+)|gpus([0-9]+)-([0-9]+)", tok)
        if not m:
            raise ConfigError(f"workload id '{wid}': bad part '{tok}' (expected seed<N>, cases<C>, gpus<LO>-<HI>)")
        name = m.group(1) or "gpus"
        if name in fields:
            raise ConfigError(f"workload id '{wid}': '{name}' given twice")
        fields[name] = tok
    if "seed" not in fields:
        raise ConfigError(f"workload id '{wid}': missing seed<N>")
    seed = int(fields["seed"][4:])
    cases = int(fields["cases"][5:]) if "cases" in fields else DEFAULT_CASES
    gpus = tuple(int(x) for x in fields["gpus"][4:].split("-")) if "gpus" in fields else DEFAULT_GPUS
    if not 1 <= cases <= MAX_CASES:
        raise ConfigError(f"workload id '{wid}': cases must be in [1, {MAX_CASES}]")
    if not 1 <= gpus[0] < gpus[1] <= MAX_GPUS + 1:
        raise ConfigError(f"workload id '{wid}': gpus<LO>-<HI> needs 1 <= LO < HI <= {MAX_GPUS + 1}")
    return seed, cases, (gpus[0], gpus[1])


def generate_case(seed: int, index: int, gpus: tuple[int, int]) -> Case:
    rng = np.random.default_rng([seed, index])
    g = int(rng.integers(gpus[0], gpus[1]))
    m = MODELS_PER_GPU * g
    return Case(g, GPU_MEM_GB, rng.uniform(*SIZE_GB, m), rng.uniform(*REQ_RATE, m), rng.uniform(*SLO, m))


def build(wid: str) -> Workload:
    seed, cases, gpus = parse_id(wid)
    return Workload(wid, tuple(generate_case(seed, i, gpus) for i in range(cases)))
