"""Which model writes the next proposal: fixed weights, or a bandit on score gain per dollar.

A proposal "wins" when its child scores above its parent. A model's value is
    P(win) x mean gain of a win / mean dollars per proposal,
with P(win) estimated optimistically (UCB1) or sampled from its Beta posterior (Thompson sampling).
The mean gain of a win is shrunk towards the pooled mean, so a model with few wins is not judged by one.
A model whose price is unknown costs COST_FLOOR per proposal (local models are nearly free).

State is never kept in memory only: it is read from the lineage store (committed attempts and their LLM
calls), so it survives resume. Iteration i only sees attempts up to iteration i - lag, exactly what the
controller guarantees to be committed when i starts, so choices do not depend on timing.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np

from evolve.config import parse_model_spec
from evolve.store import CallOutcome, Store

COST_FLOOR = 1e-5   # dollars per proposal assumed for a model with no known price


@dataclass(frozen=True)
class ModelStats:
    n: int = 0            # proposals that reached the model (an answer or a final error)
    wins: int = 0         # children that beat their parent
    gain: float = 0.0     # summed score gain of the wins
    cost: float = 0.0     # summed known dollars

    def add(self, won: bool, gain: float, cost: float) -> "ModelStats":
        return ModelStats(self.n + 1, self.wins + won, self.gain + (gain if won else 0.0), self.cost + cost)


@dataclass(frozen=True)
class Outcome:
    iteration: int
    model: str
    won: bool
    gain: float
    cost: float


@dataclass
class Ensemble:
    models: tuple[str, ...]                 # model names, in the user's order
    weights: tuple[float, ...] | None       # fixed weights, or None for the bandit
    policy: str = "ucb"
    # history of committed outcomes: iterations ascending, with the stats after each
    _iters: list[int] = field(default_factory=list)
    _snaps: list[dict[str, ModelStats]] = field(default_factory=list)

    @staticmethod
    def from_specs(specs: tuple[str, ...], policy: str) -> "Ensemble":
        parsed = [parse_model_spec(s) for s in specs]
        names = tuple(n for n, _ in parsed)
        if any(w is not None for _, w in parsed):
            return Ensemble(names, tuple(1.0 if w is None else w for _, w in parsed), policy)
        return Ensemble(names, None, policy)

    @property
    def last_seen(self) -> int:
        return self._iters[-1] if self._iters else -1

    def observe(self, o: Outcome) -> None:
        """Add one committed outcome; outcomes must come in iteration order."""
        if o.model not in self.models:
            return  # a model dropped from the config on resume
        base = dict(self._snaps[-1]) if self._snaps else {}
        base[o.model] = base.get(o.model, ModelStats()).add(o.won, o.gain, o.cost)
        self._iters.append(o.iteration)
        self._snaps.append(base)

    def stats_upto(self, iteration: int) -> dict[str, ModelStats]:
        k = bisect.bisect_right(self._iters, iteration)
        return self._snaps[k - 1] if k else {}

    def choose(self, g: np.random.Generator, upto: int) -> str:
        """The model for a proposal, from outcomes of iterations <= upto and the generator g."""
        if len(self.models) == 1:
            return self.models[0]
        if self.weights is not None:
            p = np.asarray(self.weights) / sum(self.weights)
            return self.models[int(g.choice(len(self.models), p=p))]
        stats = self.stats_upto(upto)
        untried = [m for m in self.models if stats.get(m, ModelStats()).n == 0]
        if untried:
            return untried[int(g.integers(len(untried)))]
        values = self.values(stats, g)
        best = max(values.values())
        tied = [m for m in self.models if values[m] == best]
        return tied[int(g.integers(len(tied)))]

    def values(self, stats: dict[str, ModelStats], g: np.random.Generator) -> dict[str, float]:
        total_n = sum(s.n for s in stats.values())
        total_wins = sum(s.wins for s in stats.values())
        pooled_gain = (sum(s.gain for s in stats.values()) / total_wins) if total_wins else 1.0
        out = {}
        for m in self.models:
            s = stats[m]
            if self.policy == "thompson":
                p_win = float(g.beta(1 + s.wins, 1 + s.n - s.wins))
            else:
                p_win = s.wins / s.n + math.sqrt(2 * math.log(max(total_n, 1)) / s.n)
            gain = (s.gain + pooled_gain) / (s.wins + 1)
            cost = max(s.cost / s.n, COST_FLOOR)
            out[m] = p_win * gain / cost
        return out


def outcomes(store: Store, run_id: str, after: int, upto: int) -> list[Outcome]:
    """Outcomes of committed attempts with after < iteration <= upto that called a model.

    The model is the one of the attempt's last call; the cost is the sum of its calls' known costs."""
    if upto <= after:
        return []
    by_iter: dict[int, list[CallOutcome]] = {}
    for c in store.call_outcomes(run_id, after, upto):
        by_iter.setdefault(c.iteration, []).append(c)
    result = []
    for it, rows in sorted(by_iter.items()):
        model = rows[-1].model
        cost = sum(r.cost_usd or 0.0 for r in rows)
        p_score, c_score = rows[-1].parent_score, rows[-1].child_score
        gain = (c_score - p_score) if p_score is not None and c_score is not None else 0.0
        result.append(Outcome(it, model, gain > 0, max(gain, 0.0), cost))
    return result


def catch_up(ens: Ensemble, store: Store, run_id: str, upto: int) -> None:
    """Feed the ensemble every committed outcome up to iteration `upto` that it has not seen."""
    after = max(ens.last_seen, 0)
    for o in outcomes(store, run_id, after, upto):
        ens.observe(o)
    if upto > ens.last_seen:  # remember how far we read even when there was nothing to add
        ens._iters.append(upto)
        ens._snaps.append(dict(ens._snaps[-1]) if ens._snaps else {})

