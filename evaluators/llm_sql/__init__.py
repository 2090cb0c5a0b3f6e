"""SQL-table reordering for prefix caching (llm_sql): the trusted evaluator for problems/llm_sql.

Modules: table (cells, codes, functional dependencies), text + schemas + generator (generated tables),
csv_file (user CSV files), workloads (ids), validate (the candidate's orders; serialisation), hit_rate
(the prefix-cache model), evaluator (the Evaluator implementation).
"""
from __future__ import annotations

from pathlib import Path

from evaluators.llm_sql.evaluator import LlmSqlEvaluator, Params, make


def make_evaluator(params: dict, problem_dir: Path) -> LlmSqlEvaluator:
    return make(params, problem_dir)


__all__ = ["make_evaluator", "LlmSqlEvaluator", "Params"]
