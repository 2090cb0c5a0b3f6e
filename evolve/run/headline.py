"""A run's result in one line a user can quote, printed at the end of `adrs run` and leading the report.

    held-out score, mean of 5 workloads ± 95% t: best #57 (iteration 87) 0.8123 ± 0.0110 vs initial
    0.7920 ± 0.0120: +0.0203 [+0.0101, +0.0305]; vs best baseline greedy_lpt 0.8650 ± 0.0090: -0.0527
    [-0.0600, -0.0450]; runtime_ms 540 -> 3.7: 146x faster [120x, 178x] at equal or better balancedness
    (0.812 vs 0.805)

What the intervals are (evolve.run.intervals):
- a program's score: its mean over the held-out workloads ± the half-width of a 95% Student-t interval
  over those workloads (each workload one draw of the problem's workload distribution);
- a difference (best - initial, best - baseline): the mean of per-workload differences with a paired
  95% Student-t interval, since every program ran on the same held-out workloads;
- the runtime ratio (only for a problem whose problem.toml names `objective.runtime`): the geometric
  mean over workloads of initial runtime / best runtime, with the t interval of the mean log ratio.
  "At equal or better <q>" (q: `objective.runtime_at_equal`) when the best program's q is not
  significantly worse than the initial's: the paired interval of the difference reaches zero or above.
The best program is the one the final stage scored: highest train score, earliest on ties.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from evolve.problem import Objective
from evolve.run.holdout import finalists
from evolve.run.intervals import Interval, mean_ci, paired_ci, ratio_ci
from evolve.store import Program, Store
from evolve.terms import ProgramKind, Split, Status


@dataclass(frozen=True)
class Entrant:
    label: str
    held_out: dict[str, dict[str, float]] = field(default_factory=dict)  # workload -> metric -> value

    def values(self, metric: str) -> dict[str, float]:
        return {w: ms[metric] for w, ms in self.held_out.items() if metric in ms}


@dataclass(frozen=True)
class Headline:
    text: str
    best: Interval | None = None          # the best program's mean held-out score
    initial: Interval | None = None
    vs_initial: Interval | None = None    # best - initial, paired over workloads
    baseline: str = ""                    # label of the baseline with the highest held-out mean
    vs_baseline: Interval | None = None   # best (or initial, when no child won) - that baseline
    speedup: Interval | None = None       # initial runtime / best runtime, geometric mean over workloads
    equal_quality: bool | None = None     # the best program's runtime_at_equal metric not significantly worse


def _score(iv: Interval | None) -> str:
    if iv is None:
        return "not scored"
    return f"{iv.mean:.4f}" + ("" if iv.half is None else f" ± {iv.half:.4f}")


def _diff(iv: Interval | None) -> str:
    if iv is None:
        return "no common workloads"
    return f"{iv.mean:+.4f}" + ("" if iv.lo is None else f" [{iv.lo:+.4f}, {iv.hi:+.4f}]")


def _speed(iv: Interval) -> str:
    if iv.mean >= 1:
        text = f"{iv.mean:.3g}x faster"
        return text if iv.lo is None else f"{text} [{iv.lo:.3g}x, {iv.hi:.3g}x]"
    text = f"{1 / iv.mean:.3g}x slower"  # the interval of the inverse ratio is the inverted interval
    return text if iv.lo is None else f"{text} [{1 / iv.hi:.3g}x, {1 / iv.lo:.3g}x]"


def _mean(values: dict[str, float]) -> float:
    return sum(values.values()) / len(values)


def headline(best: Entrant | None, initial: Entrant, baselines: list[Entrant], objective: Objective) -> Headline:
    """The line, from held-out values. `best` is None when no child beat the initial program on train."""
    score = objective.score
    init_iv = mean_ci(list(initial.values(score).values()))
    if init_iv is None:
        return Headline(f"no held-out {score} yet: the final stage has not scored the initial program")
    text = f"held-out {score}, mean of {init_iv.n} workloads ± 95% t: "
    top = best or initial
    best_iv = mean_ci(list(top.values(score).values())) if best else init_iv
    vs_init = paired_ci(best.values(score), initial.values(score)) if best else None
    if best is None:
        text += f"no child beat the initial program on train; initial {_score(init_iv)}"
    else:
        text += f"{best.label} {_score(best_iv)} vs initial {_score(init_iv)}: {_diff(vs_init)}"
    scored = [b for b in baselines if b.values(score)]
    rival = max(scored, key=lambda b: _mean(b.values(score)), default=None)
    vs_base = None
    if rival is not None:
        vs_base = paired_ci(top.values(score), rival.values(score))
        rival_iv = mean_ci(list(rival.values(score).values()))
        text += f"; vs best baseline {rival.label} {_score(rival_iv)}: {_diff(vs_base)}"
    speedup, equal = None, None
    if best is not None and objective.runtime:
        speedup, equal, clause = _runtime(best, initial, objective)
        text += clause
    return Headline(text, best_iv, init_iv, vs_init, rival.label if rival else "", vs_base, speedup, equal)


def _runtime(best: Entrant, initial: Entrant, objective: Objective) -> tuple[Interval | None, bool | None, str]:
    rt = objective.runtime
    before, after = initial.values(rt), best.values(rt)
    speedup = ratio_ci(before, after)
    if speedup is None:
        return None, None, ""
    clause = f"; {rt} {_mean(before):.3g} -> {_mean(after):.3g}: {_speed(speedup)}"
    q = objective.runtime_at_equal
    if not q:
        return speedup, None, clause
    sign = -1.0 if objective.metrics.get(q) == "min" else 1.0
    qb, qi = best.values(q), initial.values(q)
    gain = mean_ci([sign * (qb[w] - qi[w]) for w in sorted(set(qb) & set(qi))])
    if gain is None:
        return speedup, None, clause
    equal = gain.mean >= 0 or (gain.hi is not None and gain.hi >= 0)
    word = "equal or better" if equal else "lower" if sign > 0 else "higher"
    return speedup, equal, clause + f" at {word} {q} ({_mean(qb):.4g} vs {_mean(qi):.4g})"


# -- from a run's lineage store -------------------------------------------------------------------------

def _entrant(store: Store, label: str, p: Program) -> Entrant:
    rows: dict[str, dict[str, float]] = {}
    if p.status == Status.OK:
        for m in store.metrics(p.id, Split.HELD_OUT):
            rows.setdefault(m.workload, {})[m.metric] = m.value
    return Entrant(label, rows)


def best_label(p) -> str:
    """How the line names the best program (a stored Program or the report's ProgramInfo)."""
    return f"best #{p.id} (iteration {p.iteration})"


def from_store(store: Store, run_id: str, objective: Objective) -> Headline:
    """The line for a finished run: its initial program, the best child and the baselines, as stored."""
    picked = finalists(store, run_id, 1)
    initial = next((p for p in picked if p.kind == ProgramKind.INITIAL), None)
    if initial is None:
        return Headline("no result: the initial program did not score")
    best = next((p for p in picked if p.kind == ProgramKind.CHILD), None)
    baselines = [_entrant(store, p.name, p) for p in store.programs(run_id, kind=ProgramKind.BASELINE)]
    return headline(_entrant(store, best_label(best), best) if best else None,
                    _entrant(store, "initial", initial), baselines, objective)
