"""Template contexts: what the index page, a program's page and a failed attempt's page show."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from evolve.problem import Objective
from evolve.report import charts, code
from evolve.report.data import HELD_OUT, AttemptInfo, LlmInfo, ProgramInfo, RunData
from evolve.report.stats import Interval, compare_rows
from evolve.run.headline import Entrant, best_label, headline as run_headline
from evolve.report.verification import verification_context

ARROW = {"max": "↑", "min": "↓"}
SPLIT_ORDER = {"quick": 0, "train": 1, HELD_OUT: 2}
TERMINAL = ("finished", "interrupted", "failed")


def fmt(v: float | None, digits: int = 4) -> str:
    if v is None:
        return "–"
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.{digits - 1}e}"
    return f"{v:,.{digits}g}" if abs(v) >= 1000 else f"{v:.{digits}g}"


def fmt_ci(iv: Interval | None, signed: bool = False) -> str:
    if iv is None:
        return "–"
    m = f"{iv.mean:+.4g}" if signed else fmt(iv.mean)
    return m if iv.half is None else f"{m} ± {iv.half:.2g}"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    return f"{s // 3600}h {s % 3600 // 60:02d}m {s % 60:02d}s" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def wall_time(data: RunData) -> float:
    """Seconds the run was active: each start or resume to the next end event (or its last commit)."""
    total, start = 0.0, None
    last_commit = max((a.created_at for a in data.attempts), default=None)
    for e in data.events:
        if e["kind"] in ("started", "resumed"):
            if start is not None and last_commit:  # killed without an end event
                total += max(0.0, min(last_commit, e["at"]) - start)
            start = e["at"]
        elif e["kind"] in TERMINAL and start is not None:
            total += e["at"] - start
            start = None
    if start is not None and last_commit:
        total += max(0.0, last_commit - start)
    return total


def models(data: RunData) -> str:
    names = sorted({c.model for c in data.llm_calls})
    if names:
        return ", ".join(names)
    return ", ".join(sorted({a.proposer for a in data.attempts if a.proposer != "initial"})) or "–"


# -- the index page ------------------------------------------------------------------------------------
def index_context(data: RunData) -> dict:
    cfg = data.run["config"]
    proposals = [a for a in data.attempts if a.iteration > 0]
    failed = [a for a in proposals if a.status != "ok"]
    best = data.best()
    rows = compare_rows(data)
    figures = {"progress": charts.progress_figure(data), "tree": _tree(data)}
    if rows:
        figures["scores"] = charts.scores_figure(rows, data.score_metric)
    if charts.cost_points(data):
        figures["cost"] = charts.cost_figure(data)
    if failed:
        figures["failures"] = charts.failures_figure(data)
    verification = verification_context(data)
    budget = f"{cfg.get('iterations')} iterations"
    if cfg.get("max_wall_time_s"):
        budget += f", {duration(cfg['max_wall_time_s'])} wall time"
    cost = f"{data.cost_text()} in {len(data.llm_calls)} LLM calls" if data.llm_calls else "no LLM calls"
    summary = [
        ("problem", data.run["problem"]), ("models / proposers", models(data)), ("seed", data.run["seed"]),
        ("budget", budget), ("cost", cost), ("wall time", duration(wall_time(data))),
        ("sandbox", data.run["sandbox"]),
        ("concurrency", f"{cfg.get('proposals_in_flight')} proposals, {cfg.get('eval_slots')} evaluation slots"),
        ("proposals", f"{len(proposals)}: {len(proposals) - len(failed)} valid, {len(failed)} failed"),
        ("status", data.events[-1]["kind"] if data.events else "–"),
        ("best", f"#{best.id} (iteration {best.iteration}): {fmt(best.score)}" if best else "–"),
    ]
    others = [m for m in data.directions if m != data.score_metric]
    return dict(
        title=data.run_id, root="", run_id=data.run_id, run=data.run, summary=summary,
        headline=headline(data),
        failures=_failure_rows(failed), compare=rows,
        other_metrics=[(m, ARROW.get(data.directions[m], "")) for m in others],
        score_metric=data.score_metric, fmt=fmt, fmt_ci=fmt_ci,
        figures={k: charts.to_json(f) for k, f in figures.items()}
        | ({"verification": verification["figure"]} if verification and verification["figure"] else {}),
        verification=verification,
        top=sorted((p for p in data.lineage() if p.status == "ok" and p.score is not None),
                   key=lambda p: (-p.score, p.id))[:25],
        events=[(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at"])), e["kind"], e["detail"])
                for e in data.events],
        isolation=json.dumps(data.run["isolation"], indent=2), versions=data.run["versions"],
        config=json.dumps(cfg, indent=2), n_programs=len(data.lineage()), href=charts.program_href)


def headline(data: RunData) -> str:
    """The run's result in one line, as `adrs run` ends with it (evolve.run.headline), or '' before the
    final stage has scored anything on held-out."""
    init, best = data.initial(), data.best()
    if init is None or not data.split_values(init.id, HELD_OUT):
        return ""

    def entrant(label: str, p: ProgramInfo) -> Entrant:
        rows: dict[str, dict[str, float]] = {}
        for r in data.metrics.get(p.id, []) if p.status == "ok" else []:
            if r.split == HELD_OUT:
                rows.setdefault(r.workload, {})[r.metric] = r.value
        return Entrant(label, rows)

    objective = Objective(data.score_metric, dict(data.directions), *data.runtime)
    child = None if best is None or best is init else entrant(best_label(best), best)
    return run_headline(child, entrant("initial", init), [entrant(p.name, p) for p in data.baselines()],
                        objective).text


def _tree(data: RunData):
    from evolve.report.tree import tree_figure
    return tree_figure(data)


def _failure_rows(failed: list[AttemptInfo]) -> list[tuple[str, str, int, str]]:
    """(stage, reason, count, link to the first example)."""
    groups: dict[tuple[str, str], list[AttemptInfo]] = {}
    for a in failed:
        groups.setdefault((a.stage, a.reason or "unknown"), []).append(a)
    out = []
    for (stage, reason), atts in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        a = atts[0]
        href = charts.program_href(a.program_id) if a.program_id is not None else charts.attempt_href(a.iteration)
        out.append((stage, reason, len(atts), href))
    return out


def attempts_context(data: RunData) -> dict:
    rows = []
    for a in data.attempts:
        p = data.programs.get(a.program_id) if a.program_id is not None else None
        href = charts.program_href(p.id) if p else (charts.attempt_href(a.iteration) if a.status != "ok" else "")
        rows.append((a, p, href))
    return dict(title=f"{data.run_id}: all attempts", root="", run_id=data.run_id, rows=rows, fmt=fmt,
                href=charts.program_href)


# -- a program's page ----------------------------------------------------------------------------------
@dataclass
class MetricTable:
    columns: list[str]
    rows: list[tuple[str, str, list[tuple[str, str]], str]]   # split, workload, [(value, tooltip)], feedback
    has_feedback: bool = False


def metric_table(data: RunData, pid: int) -> MetricTable:
    """Per-workload metrics with the evaluator's words about each workload beside them, then split means."""
    rows = data.metrics.get(pid, [])
    notes = {(f.split, f.workload): f.text for f in data.feedback.get(pid, [])}
    cols = sorted({r.metric for r in rows}, key=lambda n: (n != data.score_metric, n))
    cells: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}
    for r in rows:
        tip = ""
        if r.samples:
            s = r.samples
            tip = f"{len(s)} samples: min {fmt(min(s))}, max {fmt(max(s))}"
        cells.setdefault((r.split, r.workload), {})[r.metric] = (fmt(r.value, 6), tip)
    for key in notes:  # feedback on a workload without metrics still gets its row
        cells.setdefault(key, {})
    keys = sorted(cells, key=lambda k: (SPLIT_ORDER.get(k[0], 9), k[0]))  # workloads keep stored order
    out = [(s, w, [cells[(s, w)].get(c, ("–", "")) for c in cols], notes.get((s, w), "")) for s, w in keys]
    for split in sorted({s for s, _ in keys}, key=lambda s: SPLIT_ORDER.get(s, 9)):
        means = []
        for c in cols:
            vals = [r.value for r in rows if r.split == split and r.metric == c]
            means.append((fmt(sum(vals) / len(vals), 6) if vals else "–", "mean over workloads"))
        out.append((split, "mean", means, ""))
    return MetricTable([f"{c} {ARROW.get(data.directions.get(c, ''), '')}".strip() for c in cols], out,
                       bool(notes))


@dataclass
class ProgramPage:
    data: RunData
    children: dict[int, list[int]]
    attempt_of: dict[int, AttemptInfo]
    calls_of: dict[int, list[LlmInfo]]          # by attempt id
    calls_of_program: dict[int, list[LlmInfo]]
    best_id: int | None
    path: set[int]

    @classmethod
    def build(cls, data: RunData) -> "ProgramPage":
        best = data.best()
        bid = best.id if best else None
        by_program: dict[int, list[LlmInfo]] = {}
        for c in data.llm_calls:
            if c.program_id is not None:
                by_program.setdefault(c.program_id, []).append(c)
        return cls(data, data.children(), data.attempt_of_program(), data.calls_by_attempt(), by_program,
                   bid, set(data.path_to(bid)))

    def context(self, p: ProgramInfo) -> dict:
        d = self.data
        att = self.attempt_of.get(p.id)
        # the calls that made it: recorded against its attempt, its program id, or both
        calls = {c.id: c for c in self.calls_of.get(att.id, [])} if att else {}
        calls.update({c.id: c for c in self.calls_of_program.get(p.id, [])})
        kids = [d.programs[k] for k in self.children.get(p.id, [])]
        return dict(
            title=f"{d.run_id}: program {p.id}", root="../", p=p, parent=d.programs.get(p.parent_id), attempt=att,
            children=kids[:200], more_children=max(0, len(kids) - 200), metrics=metric_table(d, p.id),
            code=code.python_html(p.source), diff=code.diff_html(p.diff) if p.diff else "",
            calls=[calls[k] for k in sorted(calls)], artifacts=d.artifacts.get(p.id, []),
            best_id=self.best_id, on_path=p.id in self.path, fmt=fmt,
            score_metric=d.score_metric, run_id=d.run_id)


def attempt_context(data: RunData, a: AttemptInfo, calls: list[LlmInfo]) -> dict:
    return dict(title=f"{data.run_id}: attempt {a.iteration}", root="../", a=a, parent=data.programs.get(a.parent_id),
                calls=calls, artifacts=data.attempt_artifacts.get(a.id, []), fmt=fmt, run_id=data.run_id)
