"""Plain records that go into the store and come out of it, so callers never see a database session."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MetricRow:
    workload: str
    split: str
    metric: str
    value: float
    samples: list[float] | None = None


@dataclass
class FeedbackRow:
    """The trusted evaluator's words about one workload (never anything the candidate printed)."""
    workload: str
    split: str
    text: str


@dataclass
class NewProgram:
    """Everything one evaluated program adds to the store."""
    kind: str
    source: str
    status: str
    iteration: int | None = None
    name: str = ""
    parent_id: int | None = None
    island: int = 0
    generation: int = 0
    diff: str = ""
    reason: str = ""
    score: float | None = None
    origin: str = ""
    metrics: list[MetricRow] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)
    feedback: list[FeedbackRow] = field(default_factory=list)


@dataclass
class NewAttempt:
    iteration: int
    island: int
    parent_id: int | None
    proposer: str
    stage: str
    status: str
    reason: str = ""
    message: str = ""
    proposal: str = ""
    duration_s: float = 0.0
    program: NewProgram | None = None
    artifacts: dict[str, str] = field(default_factory=dict)
    llm_calls: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class CallCost:
    """What one LLM call cost: enough to total a run's usage per model."""
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None      # None: no known price
    error: str


@dataclass(frozen=True)
class CallOutcome:
    """One LLM call of a committed attempt, with the scores of the attempt's parent and child."""
    iteration: int
    model: str
    cost_usd: float | None
    parent_score: float | None
    child_score: float | None   # None when the attempt made no (scored) program


@dataclass
class MeasurementRow:
    """One program's (or baseline's) decisions measured by the problem's real verifier (schema: Measurement)."""
    name: str
    kind: str
    verifier: str
    workloads: list[str]
    status: str
    program_id: int | None = None
    reason: str = ""
    sim_score: float | None = None
    sim_basis: str = ""
    score: float | None = None
    median_s: float | None = None
    spread: float | None = None
    repeats: int | None = None
    drift_flagged: bool = False
    drift: str = ""
    device_kind: str = ""
    device: str = ""
    driver: str = ""
    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    temperature_c: float | None = None
    detail: dict = field(default_factory=dict)
    batch: int = 0              # set by the store: which `adrs verify` of the run wrote it
    created_at: float = 0.0     # set by the store
