"""The llm_scheduler score and the words about the worst requests (trusted side).

Per load level l of a workload:
    attainment_l = share of requests meeting both SLOs (TTFT <= slo.ttft_s and TPOT <= slo.tpot_s)
    tail_l       = min(1, slo.ttft_s / p99 TTFT)     (1 while the p99 TTFT is within the SLO)
    level_l      = (1 - TAIL_WEIGHT) * attainment_l + TAIL_WEIGHT * tail_l
score = mean of level_l over the workload's load levels; each term is in [0, 1], so the score is too.
The tail term keeps a policy from buying attainment by starving a few requests forever (they would still
finish, the engine guarantees it, but their TTFT would sink the p99).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluators.serving.records import Records
from evaluators.serving.metrics import Slo, latencies, serving_metrics, slo_met

TAIL_WEIGHT = 0.2
DIAGNOSTICS = ("throughput_rps", "output_tokens_per_s", "mean_ttft_s", "p99_ttft_s", "mean_tpot_s",
               "p99_tpot_s", "mean_e2e_s", "p99_e2e_s", "preemptions", "slo_attainment")
OPTIONAL = ("mean_session_s", "client_fairness")   # workloads with sessions / with several clients


@dataclass(frozen=True)
class Level:
    """One simulated run of a workload at one load level."""

    load: float
    records: Records
    metrics: dict[str, float]
    level_score: float


def score_level(load: float, records: Records, slo: Slo) -> Level:
    m = serving_metrics(records, slo)
    tail = min(1.0, slo.ttft_s / m["p99_ttft_s"]) if m["p99_ttft_s"] > 0 else 1.0
    level = (1 - TAIL_WEIGHT) * m["slo_attainment"] + TAIL_WEIGHT * tail
    return Level(load, records, m, float(level))


def workload_metrics(levels: list[Level]) -> dict[str, float]:
    """`score` plus each diagnostic averaged over the levels, and per level the score and attainment."""
    out = {"score": float(np.mean([lv.level_score for lv in levels]))}
    for key in DIAGNOSTICS + OPTIONAL:
        if all(key in lv.metrics for lv in levels):
            out[key] = float(np.mean([lv.metrics[key] for lv in levels]))
    for lv in levels:
        out[f"score@{lv.load:g}"] = lv.level_score
        out[f"slo_attainment@{lv.load:g}"] = lv.metrics["slo_attainment"]
    return out


def feedback(levels: list[Level], slo: Slo) -> str:
    """The heaviest level's worst TTFT and worst TPOT, in words, with what ran ahead of the request."""
    lv = max(levels, key=lambda x: x.load)
    r = lv.records
    ttft, tpot, _ = latencies(r)
    met = slo_met(ttft, tpot, slo)
    parts = [f"at load {lv.load:g}: {met.mean():.0%} of {len(met)} requests met both SLOs "
             f"(TTFT {slo.ttft_s:g} s, TPOT {slo.tpot_s * 1e3:g} ms); "
             f"{(ttft > slo.ttft_s).mean():.0%} missed TTFT, {(np.nan_to_num(tpot) > slo.tpot_s).mean():.0%} TPOT."]
    j = int(np.argmax(ttft))
    # requests whose first token came while j waited, and that arrived after it or had a longer prompt
    ahead = (r.first_token_s > r.arrival_s[j]) & (r.first_token_s < r.first_token_s[j])
    later = int(np.sum(ahead & (r.arrival_s > r.arrival_s[j])))
    longer = int(np.sum(ahead & (r.prompt_tokens > r.prompt_tokens[j])))
    parts.append(f" Request {j} (prompt {int(r.prompt_tokens[j])} tokens) waited {ttft[j]:.1f} s for its first "
                 f"token while {int(ahead.sum())} others got theirs ({later} arrived after it, {longer} with "
                 f"longer prompts); preempted {int(r.preemptions[j])} times.")
    if np.isfinite(tpot).any():
        k = int(np.nanargmax(tpot))
        parts.append(f" Request {k} averaged {tpot[k] * 1e3:.0f} ms per output token over "
                     f"{int(r.output_tokens[k])} tokens, preempted {int(r.preemptions[k])} times.")
    return "".join(parts)
