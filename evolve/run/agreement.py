"""How far a real verifier agrees with the simulator: the two rankings, rank correlations and the pairs they
order differently (shown by `adrs verify`, `adrs show` and the report's Verification section).

Rank correlations come from scipy.stats (a host dependency already, for EPLB's MILP baseline): Spearman's rho
and Kendall's tau-b, which handles the ties a capped score produces. With fewer than three measured entrants a
correlation says nothing, so none is given.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

from evolve.store import MeasurementRow

CPU_LABEL = "cpu (harness check, not a GPU measurement)"
MIN_RANKED = 3
# Simulator scores closer than this are a tie, not an order (they are shown to 4 figures, and a held-out mean
# moves by more between seeds): a pair the measurement reverses is then no disagreement.
SIM_TIE = 1e-3


@dataclass(frozen=True)
class Ranked:
    name: str
    sim_score: float
    score: float
    spread: float
    sim_rank: int       # 1 = best
    measured_rank: int
    drift_flagged: bool


@dataclass(frozen=True)
class Disagreement:
    """Two entrants the simulator and the verifier order differently, with both figures of each."""

    better_sim: Ranked       # ahead in the simulator
    worse_sim: Ranked        # ahead in the measurement
    within_noise: bool       # the measured gap is within the timings' spread

    def text(self) -> str:
        a, b = self.better_sim, self.worse_sim
        return (f"{a.name} ranks above {b.name} in the simulator ({a.sim_score:.4g} vs {b.sim_score:.4g}) but "
                f"below it measured ({a.score:.4g} vs {b.score:.4g})"
                + (" (within the timing spread)" if self.within_noise else ""))


@dataclass(frozen=True)
class Agreement:
    batch: int
    verifier: str
    device: str                          # the device line: kind, name, driver, clocks, temperature
    basis: str                           # the split the simulator's scores come from
    ranked: list[Ranked]                 # by simulator rank
    spearman: float | None
    kendall: float | None
    disagreements: list[Disagreement]
    drift_flagged: list[str]
    failed: list[tuple[str, str]] = field(default_factory=list)   # (name, reason)
    unranked: list[str] = field(default_factory=list)             # measured but with no simulator score

    @property
    def is_cpu(self) -> bool:
        return self.device.startswith("cpu")

    def summary_line(self) -> str:
        corr = ("rank correlation n/a (fewer than 3 entrants)" if self.spearman is None
                else f"Spearman {self.spearman:.2f}, Kendall {self.kendall:.2f}")
        noisy = sum(d.within_noise for d in self.disagreements)
        return (f"verification {self.batch} ({self.verifier}, {self.device}): {len(self.ranked)} entrants ranked "
                f"against {self.basis} simulator scores; {corr}; {len(self.disagreements)} pairs ordered "
                f"differently{f' ({noisy} within noise)' if noisy else ''}; {len(self.drift_flagged)} drift-flagged"
                + (f"; {len(self.failed)} failed" if self.failed else ""))


def device_line(row: MeasurementRow) -> str:
    clocks = ", ".join(f"{k} {v:.0f}" for k, v in (("SM MHz", row.sm_clock_mhz), ("memory MHz", row.mem_clock_mhz),
                                                   ("max °C", row.temperature_c)) if v is not None)
    name = row.device + (f", driver {row.driver}" if row.driver else "") + (f"; {clocks}" if clocks else "")
    return f"{CPU_LABEL}: {name}" if row.device_kind == "cpu" else f"{row.device_kind}: {name}"


def agreement(rows: list[MeasurementRow]) -> Agreement | None:
    """The agreement of one batch's rows (None when there are none)."""
    if not rows:
        return None
    ok = [r for r in rows if r.status == "ok" and r.score is not None]
    scored = [r for r in ok if r.sim_score is not None]
    sim_rank = _ranks([r.sim_score for r in scored])
    meas_rank = _ranks([r.score for r in scored])
    ranked = sorted((Ranked(r.name, r.sim_score, r.score, r.spread or 0.0, s, m, r.drift_flagged)
                     for r, s, m in zip(scored, sim_rank, meas_rank)), key=lambda x: (x.sim_rank, x.name))
    rho = tau = None
    if len(scored) >= MIN_RANKED:
        from scipy.stats import kendalltau, spearmanr
        rho = _finite(spearmanr([r.sim_score for r in scored], [r.score for r in scored]).statistic)
        tau = _finite(kendalltau([r.sim_score for r in scored], [r.score for r in scored]).statistic)
    first = next((r for r in ok), rows[0])
    return Agreement(rows[0].batch, rows[0].verifier, device_line(first), rows[0].sim_basis or "-", ranked, rho,
                     tau, disagreements(ranked), [r.name for r in ok if r.drift_flagged],
                     [(r.name, r.reason) for r in rows if r.status != "ok"],
                     [r.name for r in ok if r.sim_score is None])


def disagreements(ranked: list[Ranked]) -> list[Disagreement]:
    """Every pair the two orders disagree on (strictly: a tie on either side, within SIM_TIE for the simulator,
    is no disagreement)."""
    out = []
    for a, b in combinations(ranked, 2):
        if abs(a.sim_score - b.sim_score) < SIM_TIE or a.score == b.score:
            continue
        hi, lo = (a, b) if a.sim_score > b.sim_score else (b, a)
        if hi.score < lo.score:
            gap = (lo.score - hi.score) / lo.score
            out.append(Disagreement(hi, lo, gap <= max(hi.spread, lo.spread)))
    return sorted(out, key=lambda d: (d.better_sim.sim_rank, d.worse_sim.sim_rank))


def _ranks(values: list[float]) -> list[int]:
    """Competition ranks, 1 = highest ("1224": ties share the better rank)."""
    return [1 + sum(v > x for v in values) for x in values]


def _finite(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None
