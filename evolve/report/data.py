"""Everything a report shows, read from the lineage store in one pass (one query per table, plain rows).

The report must work from the store alone, on another machine: the problem folder is consulted only for the
metric directions, and the score metric is inferred from the stored scores when the folder is gone.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field, fields

from evolve.llm.usage import answered, cost_text
from evolve.store import FeedbackRow, MeasurementRow, Store

HELD_OUT = "held-out"


@dataclass
class ProgramInfo:
    id: int
    iteration: int | None
    kind: str
    name: str
    parent_id: int | None
    island: int
    generation: int
    status: str
    reason: str
    score: float | None
    origin: str
    source: str
    diff: str
    created_at: float

    @property
    def label(self) -> str:
        if self.kind == "baseline":
            return f"baseline {self.name}"
        return "initial" if self.kind == "initial" else f"#{self.id}"


@dataclass
class AttemptInfo:
    id: int
    iteration: int
    island: int
    parent_id: int | None
    proposer: str
    stage: str
    status: str
    reason: str
    message: str
    proposal: str
    program_id: int | None
    duration_s: float
    created_at: float


@dataclass
class MetricInfo:
    workload: str
    split: str
    metric: str
    value: float
    samples: list[float] | None


@dataclass
class LlmInfo:
    id: int
    attempt_id: int | None
    program_id: int | None
    model: str
    messages: list[dict]
    response: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    latency_s: float
    error: str
    created_at: float


@dataclass
class RunData:
    run: dict
    events: list[dict]
    programs: dict[int, ProgramInfo]                 # by id, in id order
    attempts: list[AttemptInfo]                      # by iteration
    metrics: dict[int, list[MetricInfo]]             # by program id
    artifacts: dict[int, list[tuple[str, str]]]      # by program id
    attempt_artifacts: dict[int, list[tuple[str, str]]]  # by attempt id (failed attempts without a program)
    llm_calls: list[LlmInfo]
    feedback: dict[int, list[FeedbackRow]] = field(default_factory=dict)  # by program id: evaluator's words
    score_metric: str = "score"
    directions: dict[str, str] = field(default_factory=dict)   # metric -> max/min
    runtime: tuple[str, str] = ("", "")   # objective.runtime and .runtime_at_equal, when the problem names them
    measurements: list[MeasurementRow] = field(default_factory=list)   # `adrs verify`, every batch

    # -- derived views ----------------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        return self.run["id"]

    def lineage(self) -> list[ProgramInfo]:
        """The initial program and every child (not baselines), by id."""
        return [p for p in self.programs.values() if p.kind != "baseline"]

    def baselines(self) -> list[ProgramInfo]:
        return [p for p in self.programs.values() if p.kind == "baseline"]

    def initial(self) -> ProgramInfo | None:
        return next((p for p in self.programs.values() if p.kind == "initial"), None)

    def best(self) -> ProgramInfo | None:
        """Highest train score, earliest program on ties (as the final scoring picks it)."""
        ok = [p for p in self.lineage() if p.status == "ok" and p.score is not None]
        return min(ok, key=lambda p: (-p.score, p.id), default=None)

    def path_to(self, pid: int | None) -> list[int]:
        """Program ids from the root down to pid."""
        out: list[int] = []
        while pid is not None and pid in self.programs and pid not in out:
            out.append(pid)
            pid = self.programs[pid].parent_id
        return out[::-1]

    def children(self) -> dict[int, list[int]]:
        kids: dict[int, list[int]] = defaultdict(list)
        for p in self.lineage():
            if p.parent_id is not None:
                kids[p.parent_id].append(p.id)
        return kids

    def attempt_of_program(self) -> dict[int, AttemptInfo]:
        return {a.program_id: a for a in self.attempts if a.program_id is not None}

    def calls_by_attempt(self) -> dict[int, list[LlmInfo]]:
        out: dict[int, list[LlmInfo]] = defaultdict(list)
        for c in self.llm_calls:
            if c.attempt_id is not None:
                out[c.attempt_id].append(c)
        return out

    def split_values(self, pid: int, split: str, metric: str | None = None) -> dict[str, float]:
        """workload -> value of one metric (default: the score) on one split."""
        m = metric or self.score_metric
        return {r.workload: r.value for r in self.metrics.get(pid, []) if r.split == split and r.metric == m}

    def metric_names(self) -> list[str]:
        names = {r.metric for rows in self.metrics.values() for r in rows}
        return sorted(names, key=lambda n: (n != self.score_metric, n))

    @property
    def cost_usd(self) -> float:
        return sum(c.cost_usd or 0.0 for c in self.llm_calls)

    @property
    def priced(self) -> bool:
        """Some LLM call has a price: dollars mean something (a local model without a price has none)."""
        return any(c.cost_usd is not None for c in self.llm_calls)

    def cost_text(self) -> str:
        """The run's dollars as `adrs run` says them: "unknown", "$x" or "$x + unknown" (evolve.llm.usage)."""
        done = [c for c in self.llm_calls if answered(c.error)]
        return cost_text(self.cost_usd, len(done), sum(c.cost_usd is None for c in done))


def gather(store: Store, run_id: str) -> RunData:
    run = store.run(run_id)
    rows = store.run_rows(run_id, {
        "programs": _fields(ProgramInfo), "attempts": _fields(AttemptInfo),
        "metrics": ("program_id", "workload", "split", "metric", "value", "samples"),
        "feedback": ("program_id", "workload", "split", "text"),
        "artifacts": ("program_id", "attempt_id", "name", "content"),
        "llm_calls": _fields(LlmInfo), "measurements": _fields(MeasurementRow)})
    data = RunData(
        run={"id": run.id, "problem": run.problem, "problem_dir": run.problem_dir, "seed": run.seed,
             "config": json.loads(run.config), "sandbox": run.sandbox,
             "isolation": json.loads(run.isolation), "versions": json.loads(run.versions),
             "created_at": run.created_at},
        events=[{"kind": e.kind, "detail": e.detail, "at": e.at} for e in store.events(run_id)],
        programs={r[0]: ProgramInfo(*r) for r in rows["programs"]},
        attempts=[AttemptInfo(*r) for r in rows["attempts"]], metrics=_metrics(rows["metrics"]),
        artifacts={}, attempt_artifacts={}, llm_calls=_llm_calls(rows["llm_calls"]),
        feedback=_feedback(rows["feedback"]), measurements=_measurements(rows["measurements"]))
    data.artifacts, data.attempt_artifacts = _artifacts(rows["artifacts"])
    data.score_metric, data.directions, data.runtime = _objective(data)
    return data


def _fields(cls) -> tuple[str, ...]:
    # each record's fields are named after its table's columns, so the tuples fill it in order
    return tuple(f.name for f in fields(cls))


def _metrics(rows: list[tuple]) -> dict[int, list[MetricInfo]]:
    out: dict[int, list[MetricInfo]] = defaultdict(list)
    for pid, wl, split, metric, value, samples in rows:
        out[pid].append(MetricInfo(wl, split, metric, value, json.loads(samples) if samples else None))
    return dict(out)


def _measurements(rows: list[tuple]) -> list[MeasurementRow]:
    out = []
    for r in rows:
        m = MeasurementRow(*r)
        m.workloads, m.detail = json.loads(m.workloads), json.loads(m.detail) if m.detail else {}
        out.append(m)
    return out


def _feedback(rows: list[tuple]) -> dict[int, list[FeedbackRow]]:
    out: dict[int, list[FeedbackRow]] = defaultdict(list)
    for pid, wl, split, text in rows:
        out[pid].append(FeedbackRow(wl, split, text))
    return dict(out)


def _artifacts(rows: list[tuple]) -> tuple[dict, dict]:
    by_prog: dict[int, list[tuple[str, str]]] = defaultdict(list)
    by_att: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for pid, aid, name, content in rows:
        if pid is not None:
            if (name, content) not in by_prog[pid]:  # an attempt's and its program's copy of the same text
                by_prog[pid].append((name, content))
        elif aid is not None:
            by_att[aid].append((name, content))
    return dict(by_prog), dict(by_att)


def _llm_calls(rows: list[tuple]) -> list[LlmInfo]:
    out = []
    for r in rows:
        out.append(LlmInfo(r[0], r[1], r[2], r[3], _messages(r[4]), r[5] or "", r[6] or 0, r[7] or 0, r[8],
                           r[9] or 0.0, r[10] or "", r[11]))
    return out


def _messages(text: str) -> list[dict]:
    """Chat messages as [{role, content}]; anything else is shown as one message."""
    try:
        v = json.loads(text)
    except (TypeError, ValueError):
        return [{"role": "prompt", "content": str(text)}]
    if isinstance(v, list):
        return [{"role": str(m.get("role", "")), "content": _content(m.get("content", ""))}
                if isinstance(m, dict) else {"role": "", "content": str(m)} for m in v]
    return [{"role": "prompt", "content": _content(v)}]


def _content(c) -> str:
    if isinstance(c, str):
        return c
    if isinstance(c, list):  # content parts: [{"type": "text", "text": ...}]
        return "\n".join(p.get("text", json.dumps(p)) if isinstance(p, dict) else str(p) for p in c)
    return json.dumps(c, indent=2)


def _objective(data: RunData) -> tuple[str, dict[str, str], tuple[str, str]]:
    """The score metric, metric directions and runtime metrics: from the problem when it can be loaded,
    else inferred (and no runtime metrics)."""
    from evolve import problem as pm
    from evolve.errors import AdrsError
    try:
        obj = pm.load(data.run["problem_dir"], check_evaluator=False).objective
        return obj.score, dict(obj.metrics), (obj.runtime, obj.runtime_at_equal)
    except (AdrsError, OSError):
        pass
    init = data.initial()
    rows = data.metrics.get(init.id, []) if init else []
    for name in sorted({r.metric for r in rows}):
        vals = [r.value for r in rows if r.split == "train" and r.metric == name]
        if vals and init.score is not None and abs(sum(vals) / len(vals) - init.score) < 1e-9:
            return name, {name: "max"}, ("", "")
    return "score", {"score": "max"}, ("", "")
