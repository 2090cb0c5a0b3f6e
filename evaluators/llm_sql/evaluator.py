"""The llm_sql evaluator: hand the candidate the table, validate its reordering, serialise the prompts on the
trusted side and measure their prefix-cache hit rate; score = (1-w) * hit_rate + w * speed."""
from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluators.base import ConfigError, Evaluator, WorkloadResult
from evaluators.llm_sql import workloads
from evaluators.llm_sql.hit_rate import HitRate, measure
from evaluators.llm_sql.table import Table
from evaluators.llm_sql.validate import Reordering, serialise, validate
from evaluators.params import parse_params
from sandbox.base import Candidate


@dataclass(frozen=True)
class Params:
    """[evaluator.params] of problem.toml."""

    function: str = "reorder"
    cache_rows: int = 64            # the prefix cache holds the prompts of the last cache_rows rows sent
    runtime_weight: float = 0.05    # w (ADRS: 0.05); 0 makes the score deterministic
    runtime_budget_s: float = 2.0   # speed = max(0, 1 - runtime_s / runtime_budget_s)

    @staticmethod
    def parse(raw: Mapping[str, Any]) -> "Params":
        p = parse_params(Params, raw, "llm_sql")
        if p.cache_rows < 1 or not 0 <= p.runtime_weight <= 1 or p.runtime_budget_s <= 0:
            raise ConfigError("llm_sql params: cache_rows >= 1, runtime_weight in [0, 1], runtime_budget_s > 0")
        return p


class LlmSqlEvaluator(Evaluator):
    noisy_metrics = ("runtime_s",)

    def __init__(self, params: Params, problem_dir: Path) -> None:
        self.params = params
        self.problem_dir = Path(problem_dir)
        self.workload = functools.cache(self._build)

    def _build(self, wid: str) -> tuple[Table, list[tuple[str, str]]]:
        """The table and its functional dependencies (built once per process)."""
        table = workloads.build(wid, self.problem_dir)
        return table, table.functional_dependencies()

    def check_workload(self, workload_id: str) -> None:
        """A CSV file is read whole (and kept); a generated table is made when first evaluated."""
        if workloads.is_file(workload_id):
            self.workload(workload_id)
        else:
            workloads.check(workload_id)

    def evaluate(self, candidate: Candidate, workload_id: str) -> WorkloadResult:
        table, fds = self.workload(workload_id)
        args = (list(table.columns), [list(r) for r in table.rows], [list(fd) for fd in fds])
        result, samples = candidate.timed_call(self.params.function, *args, repeats=1)
        reordering = validate(result, table)
        hits = measure(serialise(table, reordering), self.params.cache_rows)
        return self._result(workload_id, table, reordering, hits, samples[0])

    def _result(self, wid: str, table: Table, r: Reordering, hits: HitRate, runtime_s: float) -> WorkloadResult:
        p = self.params
        speed = max(0.0, 1.0 - runtime_s / p.runtime_budget_s)
        score = (1 - p.runtime_weight) * hits.rate + p.runtime_weight * speed
        metrics = {
            "score": min(1.0, max(0.0, score)),
            "hit_rate": hits.rate,
            "hit_rate_unbounded_cache": hits.unbounded_rate,
            "runtime_s": runtime_s,
            "rows": float(table.n_rows),
            "prompt_chars": float(hits.total_chars),
        }
        return WorkloadResult(wid, metrics, {"runtime_s": [runtime_s]}, feedback(table, r, hits, runtime_s, p))


def missed_by_column(table: Table, r: Reordering, hits: HitRate) -> np.ndarray:
    """[cols] characters of each column's cells that were not wholly inside their row's cache hit."""
    lengths = table.cell_chars[r.row_order[:, None], r.col_order]   # [rows, cols] in sent order
    ends = np.cumsum(lengths, axis=1)
    missed = np.where(ends > hits.row_hits[:, None], lengths, 0)
    out = np.zeros(table.n_cols, dtype=np.int64)
    np.add.at(out, r.col_order.ravel(), missed.ravel())
    return out


def feedback(table: Table, r: Reordering, hits: HitRate, runtime_s: float, p: Params) -> str:
    lost = hits.unbounded_rate - hits.rate
    words = [f"hit rate {hits.rate:.3f} with the last {p.cache_rows} rows cached; {hits.unbounded_rate:.3f} if every "
             f"earlier row stayed cached ({'row order lost ' + format(lost, '.3f') if lost > 0.0005 else 'row order lost nothing'})."]
    missed = missed_by_column(table, r, hits)
    distinct = table.distinct()
    repeated = [c for c in np.argsort(-missed) if distinct[c] < table.n_rows and missed[c] > 0][:2]
    if repeated:
        parts = [f"'{table.columns[c]}' ({distinct[c]} distinct values, {missed[c] / hits.total_chars:.0%} of all "
                 f"characters)" for c in repeated]
        words.append("Repeated values still missed most in " + " and ".join(parts) + ".")
    words.append(f"Reordering took {runtime_s:.2f} s of the {p.runtime_budget_s:g} s speed budget.")
    return " ".join(words)


def make(params: dict, problem_dir: Path) -> LlmSqlEvaluator:
    return LlmSqlEvaluator(Params.parse(params), Path(problem_dir))


__all__ = ["LlmSqlEvaluator", "Params", "make"]
