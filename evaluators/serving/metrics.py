"""Per-workload serving metrics from the engine's per-request records.

Definitions (as vLLM's and Sarathi-Serve's benchmarks use them):
  TTFT  first token time - arrival (queueing + prefill, recompute included if preempted before it)
  TPOT  (finish - first token) / (output tokens - 1): a request's mean time per output token after the
        first; undefined for one-token outputs, which are left out of TPOT statistics and meet any TPOT SLO
  E2E   finish - arrival
  throughput  requests and output tokens per second over the span from the first arrival to the last finish
  SLO attainment  the share of requests that meet both the TTFT and the TPOT SLO
  session time  (workloads with sessions) from a session's first arrival to its last finish: an agent's job
                completion time, what Continuum optimises
  client fairness  (workloads with several clients) Jain's index over clients of their mean TTFT slowdown's
                inverse: 1 when every client waits alike, 1/k when one of k clients gets all the service
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluators.serving.records import Records


@dataclass(frozen=True)
class Slo:
    ttft_s: float
    tpot_s: float


def _stats(name: str, x: np.ndarray) -> dict[str, float]:
    if not len(x):
        return {f"mean_{name}": 0.0, f"p99_{name}": 0.0}
    return {f"mean_{name}": float(x.mean()), f"p99_{name}": float(np.percentile(x, 99))}


def latencies(records: Records) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(TTFT, TPOT, E2E) per request; TPOT is NaN for one-token outputs."""
    if np.isnan(records.finish_s).any() or np.isnan(records.first_token_s).any():
        raise ValueError("records hold unfinished requests")
    ttft = records.first_token_s - records.arrival_s
    e2e = records.finish_s - records.arrival_s
    steps = records.output_tokens - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(steps > 0, (records.finish_s - records.first_token_s) / np.maximum(steps, 1), np.nan)
    return ttft, tpot, e2e


def serving_metrics(records: Records, slo: Slo | None = None) -> dict[str, float]:
    n = len(records.arrival_s)
    if not n:
        raise ValueError("no requests")
    ttft, tpot, e2e = latencies(records)
    span = float(records.finish_s.max() - records.arrival_s.min())
    out = {
        "requests": float(n),
        "throughput_rps": n / span if span > 0 else 0.0,
        "output_tokens_per_s": float(records.output_tokens.sum()) / span if span > 0 else 0.0,
        **_stats("ttft_s", ttft),
        **_stats("tpot_s", tpot[~np.isnan(tpot)]),
        **_stats("e2e_s", e2e),
        "preemptions": float(records.preemptions.sum()),
        "preempted_share": float((records.preemptions > 0).mean()),
    }
    if slo is not None:
        out["slo_attainment"] = float(slo_met(ttft, tpot, slo).mean())
    if records.session is not None and (records.session >= 0).any():
        out["mean_session_s"] = float(session_times(records).mean())
    if records.client is not None and len(np.unique(records.client)) > 1:
        out["client_fairness"] = client_fairness(records.client, ttft)
    return out


def session_times(records: Records) -> np.ndarray:
    """Per session: last finish - first arrival."""
    s = records.session
    keep = s >= 0
    ids, inv = np.unique(s[keep], return_inverse=True)
    first = np.full(len(ids), np.inf)
    last = np.zeros(len(ids))
    np.minimum.at(first, inv, records.arrival_s[keep])
    np.maximum.at(last, inv, records.finish_s[keep])
    return last - first


def client_fairness(client: np.ndarray, ttft: np.ndarray) -> float:
    """Jain's index of 1 / (1 + mean TTFT in s) per client: in (0, 1], 1 = every client waits alike."""
    ids, inv = np.unique(client, return_inverse=True)
    mean = np.bincount(inv, weights=ttft) / np.bincount(inv)
    x = 1.0 / (1.0 + mean)
    return float(x.sum() ** 2 / (len(x) * (x * x).sum()))


def slo_met(ttft: np.ndarray, tpot: np.ndarray, slo: Slo) -> np.ndarray:
    """Per request: both SLOs met (a one-token output meets the TPOT SLO)."""
    return (ttft <= slo.ttft_s) & (np.isnan(tpot) | (tpot <= slo.tpot_s))
