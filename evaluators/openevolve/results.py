"""What comes back from the in-sandbox harness, validated and mapped to our metrics and feedback.

Everything here was produced beside the candidate, so it is checked like candidate output: a dict of the
expected shape, names short, numbers finite, the score inside its bound, sizes capped. The score is
OpenEvolve's fitness: `combined_score` when the evaluator gives one, else the mean of its numeric metrics
but `error` (OpenEvolve's own fallback). Other numbers become metrics; strings and artifacts become feedback.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from evaluators.base import DECISION_METRIC, FEEDBACK_CHARS, InvalidOutput

SCORE = "score"
STAGE_METRIC = "openevolve_stage"   # the last cascade stage run (0: a plain evaluate)
MAX_ITEMS = 64                      # metrics and artifacts, each
NAME_CHARS = 64
TEXT_CHARS = 4000
RESERVED = (SCORE, DECISION_METRIC, STAGE_METRIC)


@dataclass(frozen=True)
class Mapped:
    score: float
    metrics: dict[str, float]
    feedback: str


def missing_modules(answer: object) -> list[str]:
    """The Python packages the sandbox lacks, when the harness says so (before running the evaluator)."""
    if isinstance(answer, dict) and set(answer) == {"missing"} and isinstance(answer["missing"], list):
        return [str(m)[:NAME_CHARS] for m in answer["missing"]][:MAX_ITEMS]
    return []


def map_answer(answer: object, score_bound: float) -> Mapped:
    """Validate the harness's answer and map it; raise InvalidOutput naming the rule broken."""
    if not isinstance(answer, dict) or not {"metrics", "artifacts", "stage"} <= set(answer):
        raise InvalidOutput(f"the harness answered {type(answer).__name__} {_short(answer)}, not "
                            "{metrics, artifacts, stage}")
    metrics, artifacts, stage = answer["metrics"], answer["artifacts"], answer["stage"]
    if not isinstance(metrics, dict) or not isinstance(artifacts, dict):
        raise InvalidOutput("metrics and artifacts must be dicts")
    if type(stage) is not int or not 0 <= stage <= 3:
        raise InvalidOutput(f"cascade stage must be 0..3, got {_short(stage)}")
    for what, d in (("metrics", metrics), ("artifacts", artifacts)):
        if len(d) > MAX_ITEMS:
            raise InvalidOutput(f"{len(d)} {what}: at most {MAX_ITEMS}")
        bad = [k for k in d if not isinstance(k, str) or not 0 < len(k) <= NAME_CHARS]
        if bad:
            raise InvalidOutput(f"{what} names must be strings of 1..{NAME_CHARS} characters: {_short(bad[0])}")
    numbers, words = _split(metrics)
    score = _score(numbers, score_bound)
    out = {_rename(k): v for k, v in numbers.items() if k != "combined_score"}
    out[SCORE] = score
    out[STAGE_METRIC] = float(stage)
    return Mapped(score, out, _feedback(words, artifacts))


def _split(metrics: dict) -> tuple[dict[str, float], dict[str, str]]:
    numbers: dict[str, float] = {}
    words: dict[str, str] = {}
    for k, v in metrics.items():
        if isinstance(v, bool) or isinstance(v, (int, float)):
            if not math.isfinite(float(v)):
                raise InvalidOutput(f"metric '{k}' is not a finite number ({v})")
            numbers[k] = float(v)
        elif isinstance(v, str):
            words[k] = v[:TEXT_CHARS]
        else:
            raise InvalidOutput(f"metric '{k}' is {type(v).__name__}, not a number or a string")
    return numbers, words


def _score(numbers: dict[str, float], bound: float) -> float:
    if "combined_score" in numbers:
        score = numbers["combined_score"]
    else:
        vals = [v for k, v in numbers.items() if k != "error"]
        if not vals:
            raise InvalidOutput("the evaluator returned no numeric metric (no combined_score, nothing to average)")
        score = sum(vals) / len(vals)
    if abs(score) > bound:
        raise InvalidOutput(f"score {score:.6g} is outside the bound [-{bound:g}, {bound:g}] "
                            "(evaluator.params.score_bound)")
    return score


def _rename(name: str) -> str:
    """An evaluator's metric named like one of ours keeps its value under a prefixed name."""
    return f"openevolve_{name}" if name in RESERVED else name


def _feedback(words: dict[str, str], artifacts: dict) -> str:
    parts = [f"{k}: {v}" for k, v in sorted(words.items())]
    for k, v in artifacts.items():
        if not isinstance(v, str):
            raise InvalidOutput(f"artifact '{k}' is {type(v).__name__}, not text")
        parts.append(f"{k}: {' '.join(v[:TEXT_CHARS].split())}")
    return "; ".join(parts)[:FEEDBACK_CHARS]


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
