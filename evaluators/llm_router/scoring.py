"""The llm_router score (the llm_scheduler's: SLO attainment with a p99 TTFT term, averaged over load
levels) and the cluster's diagnostics and words.

Diagnostics per level, averaged over levels: `prefix_hit` (share of prompt blocks the instances' prefix
caches served), `imbalance` (max / mean of requests served per instance, speed-weighted: 1 is perfect),
`utilisation` (mean GPU busy share), `utilisation_min`/`_max` (the least and most busy instance),
`migrations` (running requests moved between instances) and `migrated_gb` (their KV, GB).
"""
from __future__ import annotations

import numpy as np

from evaluators.llm_scheduler.scoring import Level, score_level
from evaluators.serving.cluster import ClusterResult
from evaluators.serving.metrics import Slo, latencies

CLUSTER_METRICS = ("prefix_hit", "imbalance", "utilisation", "utilisation_min", "utilisation_max", "migrations",
                   "migrated_gb")


def cluster_metrics(res: ClusterResult, speeds: list[float]) -> dict[str, float]:
    n = len(speeds)
    served = np.bincount(res.instance, minlength=n) / np.asarray(speeds)
    busy = np.asarray(res.busy_s) / max(res.end_s, 1e-9)
    return {"prefix_hit": float(np.mean(res.prefix_hit)), "imbalance": float(served.max() / max(served.mean(), 1e-9)),
            "utilisation": float(busy.mean()), "utilisation_min": float(busy.min()),
            "utilisation_max": float(busy.max()), "migrations": float(res.migration.count),
            "migrated_gb": res.migration.bytes / 1e9}


def level(load: float, res: ClusterResult, slo: Slo, speeds: list[float]) -> Level:
    lv = score_level(load, res.records, slo)
    lv.metrics.update(cluster_metrics(res, speeds))
    return lv


def feedback(levels: list[Level], results: list[ClusterResult], slo: Slo) -> str:
    lv, res = max(zip(levels, results), key=lambda x: x[0].load)
    ttft, tpot, _ = latencies(res.records)
    n = len(res.prefix_hit)
    share = np.bincount(res.instance, minlength=n) / len(res.instance)
    k = int(share.argmax())
    misses = [f"{np.mean(ttft[res.instance == j] > slo.ttft_s):.0%}" if share[j] else "idle" for j in range(n)]
    return (f"at load {lv.load:g}: {lv.metrics['slo_attainment']:.0%} of requests met both SLOs; instance {k} got "
            f"{share[k]:.0%} of the requests and its queue peaked at {res.queue_peak[k]}; TTFT misses per instance: "
            f"{', '.join(misses)}; prefix-cache hit rate per instance: {', '.join(f'{h:.2f}' for h in res.prefix_hit)}.")
