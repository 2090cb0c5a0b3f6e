"""Terminal views of runs and programs (rich tables), shared by `adrs run`, `show`, `list` and `eval`."""
from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from evolve.cli.app import code, rule
from evolve.errors import AdrsError
from evolve.problem import Objective
from evolve.run.headline import from_store
from evolve.run.holdout import ScoreRow, summary_rows
from evolve.store import Store


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


ARROW = {"max": "↑", "min": "↓"}


def score_table(rows: list[ScoreRow], score: str, metrics: dict[str, str]) -> Table:
    """Score on train and held-out, then the other objective metrics on held-out (arrow: better)."""
    others = [m for m in metrics if m != score]
    t = Table(title="Initial, best and baselines: means over workloads (other metrics: held-out)")
    t.add_column("program", no_wrap=True)
    t.add_column(f"{score} train", justify="right")
    t.add_column(f"{score} held-out", justify="right")
    for m in others:
        t.add_column(f"{m} {ARROW[metrics[m]]}", justify="right")
    for r in rows:
        label = f"{r.label} #{r.program_id}"
        if r.status != "ok":
            t.add_row(label, f"failed: {r.reason}", "", *[""] * len(others))
            continue
        t.add_row(label, _fmt(r.train.get(score)), _fmt(r.held_out.get(score)),
                  *[_fmt(r.held_out.get(m)) for m in others])
    return t


def print_summary(console: Console, store: Store, run_id: str, spec_score: str, metrics: dict[str, str],
                  top_k: int, objective: Objective | None = None) -> None:
    """The table of initial, best and baselines, then the run's result in one line (evolve.run.headline).
    Without `objective`, the run's own problem folder supplies it (for its runtime metric names)."""
    console.print(score_table(summary_rows(store, run_id, top_k), spec_score, metrics))
    objective = objective or run_objective(store, run_id, Objective(spec_score, dict(metrics)))
    console.print(f"Result: {from_store(store, run_id, objective).text}", markup=False, highlight=False,
                  soft_wrap=True)  # one line, to quote whole


def summary_json(store: Store, run_id: str, objective: Objective, top_k: int) -> dict:
    """The run's final summary for scripts: the table of initial, best and baselines (means over workloads
    per split) and the result line with the intervals behind it."""
    h = from_store(store, run_id, objective)
    iv = {k: _interval(getattr(h, k)) for k in ("best", "initial", "vs_initial", "vs_baseline", "speedup")}
    return {"result": {"text": h.text, **iv, "baseline": h.baseline or None, "equal_quality": h.equal_quality},
            "table": [{"label": r.label, "program": r.program_id, "status": r.status, "reason": r.reason,
                       "train": r.train, "held_out": r.held_out} for r in summary_rows(store, run_id, top_k)]}


def _interval(iv) -> dict | None:
    return None if iv is None else {"mean": iv.mean, "lo": iv.lo, "hi": iv.hi, "n": iv.n}


def run_objective(store: Store, run_id: str, fallback: Objective) -> Objective:
    """The objective of the run's problem as its folder declares it now, or `fallback` if it is gone."""
    from evolve import problem as pm
    try:
        return pm.load(store.run(run_id).problem_dir, check_evaluator=False).objective
    except (AdrsError, OSError):
        return fallback


def workload_table(results: dict[str, list], title: str) -> Table:
    t = Table(title=title)
    names = sorted({m for rs in results.values() for r in rs for m in r.metrics})
    t.add_column("split")
    t.add_column("workload")
    for n in names:
        t.add_column(n, justify="right")
    for split, rs in results.items():
        for r in rs:
            t.add_row(split, r.workload, *[_fmt(r.metrics.get(n)) for n in names])
    return t


def run_summary(store: Store, run_id: str) -> dict:
    run = store.run(run_id)
    attempts = store.attempts(run_id)
    progs = store.programs(run_id, status="ok")
    best = max((p for p in progs if p.kind != "baseline"), key=lambda p: (p.score, -p.id), default=None)
    events = store.events(run_id)
    return {
        "run": run.id, "problem": run.problem, "seed": run.seed, "sandbox": run.sandbox,
        "config": json.loads(run.config), "isolation": json.loads(run.isolation),
        "versions": json.loads(run.versions), "iterations": max((a.iteration for a in attempts), default=-1),
        "attempts": len(attempts), "programs_ok": sum(p.kind != "baseline" for p in progs),
        "failures": store.failure_counts(run_id),
        "best": None if best is None else {"id": best.id, "iteration": best.iteration, "score": best.score},
        "status": events[-1].kind if events else "",
        "events": [{"kind": e.kind, "detail": e.detail, "at": e.at} for e in events],
    }


def print_program(console: Console, store: Store, run_id: str, pid: int) -> None:
    p = store.program(run_id, pid)
    console.print(f"[bold]program {p.id}[/] ({p.kind}{' ' + p.name if p.name else ''}) iteration {p.iteration} "
                  f"island {p.island} generation {p.generation} parent {p.parent_id} status {p.status}"
                  f"{' (' + p.reason + ')' if p.reason else ''}")
    console.print(f"made by: {p.origin}")
    console.print(code(console, p.source, "python", line_numbers=True))
    t = Table(title="metrics")
    for c in ("split", "workload", "metric", "value"):
        t.add_column(c)
    for m in store.metrics(p.id):
        t.add_row(m.split, m.workload, m.metric, _fmt(m.value))
    console.print(t)
    for f in store.feedback(p.id):  # the trusted evaluator's words, apart from the program's own output
        console.print(f"evaluator on {f.split} {f.workload}: {f.text}", markup=False, highlight=False)
    for c in store.llm_calls(p.id):
        cost = "cost unknown" if c.cost_usd is None else f"${c.cost_usd:.4f}"
        console.print(f"LLM call {c.id}: {c.model}, {c.prompt_tokens}+{c.completion_tokens} tokens, {cost}, "
                      f"{c.latency_s:.1f} s{', error: ' + c.error if c.error else ''}", markup=False)
    for name, text in store.artifacts(p.id).items():
        rule(console, name)
        console.print(text, markup=False, highlight=False)


def program_json(store: Store, run_id: str, pid: int) -> dict:
    p = store.program(run_id, pid)
    return {"id": p.id, "kind": p.kind, "name": p.name, "iteration": p.iteration, "parent": p.parent_id,
            "island": p.island, "generation": p.generation, "status": p.status, "reason": p.reason,
            "score": p.score, "origin": p.origin, "source": p.source, "diff": p.diff,
            "metrics": [m.__dict__ for m in store.metrics(p.id)], "artifacts": store.artifacts(p.id),
            "feedback": [f.__dict__ for f in store.feedback(p.id)],
            "llm_calls": [{"model": c.model, "prompt_tokens": c.prompt_tokens,
                           "completion_tokens": c.completion_tokens, "cost_usd": c.cost_usd,
                           "latency_s": c.latency_s, "error": c.error, "response": c.response}
                          for c in store.llm_calls(p.id)]}
