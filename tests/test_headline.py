"""The end-of-run line (evolve/run/headline.py): its numbers by hand, and from a real run of the toy problem,
where `adrs run` prints it and the report's summary leads with the same text."""
from __future__ import annotations

import html
import math
import re

import numpy as np
import pytest

from evolve.errors import AdrsError
from evolve.problem import Objective, load
from evolve.run.headline import Entrant, headline
from evolve.run.intervals import ratio_ci
from tests.conftest import adrs

OBJ = Objective("score", {"score": "max", "balancedness": "max", "runtime_ms": "min"},
                runtime="runtime_ms", runtime_at_equal="balancedness")


def entrant(label: str, **columns: list[float]) -> Entrant:
    n = len(next(iter(columns.values())))
    return Entrant(label, {f"w{i}": {k: v[i] for k, v in columns.items()} for i in range(n)})


def t_half(values: list[float]) -> float:
    t975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776}[len(values) - 1]  # standard tables
    return t975 * float(np.std(values, ddof=1)) / math.sqrt(len(values))


INITIAL = entrant("initial", score=[0.5, 0.6, 0.7], balancedness=[0.80, 0.82, 0.84], runtime_ms=[540, 500, 600])
BEST = entrant("best #9 (iteration 4)", score=[0.6, 0.65, 0.8], balancedness=[0.81, 0.82, 0.84],
               runtime_ms=[3.7, 4.0, 5.0])
BASELINE = entrant("greedy", score=[0.7, 0.7, 0.9])
WEAK = entrant("contiguous", score=[0.1, 0.2, 0.3])


def test_best_against_initial_and_best_baseline_paired_by_workload():
    h = headline(BEST, INITIAL, [WEAK, BASELINE], OBJ)
    d = [0.1, 0.05, 0.1]
    assert h.vs_initial.mean == pytest.approx(np.mean(d))
    assert h.vs_initial.half == pytest.approx(t_half(d))
    assert h.baseline == "greedy"  # the baseline with the highest held-out mean, not the first listed
    assert h.vs_baseline.mean == pytest.approx(np.mean([-0.1, -0.05, -0.1]))
    assert h.best.half == pytest.approx(t_half([0.6, 0.65, 0.8]))
    text = h.text
    assert text.startswith("held-out score, mean of 3 workloads ± 95% t: best #9 (iteration 4) 0.6833 ± ")
    assert f"vs initial 0.6000 ± {t_half([0.5, 0.6, 0.7]):.4f}: +0.0833 [" in text
    assert "; vs best baseline greedy 0.7667 ± " in text and ": -0.0833 [" in text
    assert "\n" not in text


def test_runtime_ratio_is_a_geometric_mean_at_equal_or_better_quality():
    h = headline(BEST, INITIAL, [], OBJ)
    logs = [math.log(540 / 3.7), math.log(500 / 4.0), math.log(600 / 5.0)]
    assert h.speedup.mean == pytest.approx(math.exp(np.mean(logs)))
    assert h.speedup.lo == pytest.approx(math.exp(np.mean(logs) - t_half(logs)))
    assert h.equal_quality is True
    assert re.search(r"; runtime_ms 547 -> 4.23: 1\d\dx faster \[\d+x, \d+x\] at equal or better balancedness "
                     r"\(0\.8233 vs 0\.82\)$", h.text), h.text


def test_runtime_ratio_says_when_quality_dropped_or_it_got_slower():
    worse = entrant("best #2 (iteration 1)", score=[0.6, 0.7, 0.8], balancedness=[0.70, 0.71, 0.72],
                    runtime_ms=[1080, 1000, 1200])
    h = headline(worse, INITIAL, [], OBJ)
    assert h.equal_quality is False
    assert "2x slower" in h.text and "at lower balancedness (0.71 vs 0.82)" in h.text


def test_no_runtime_metric_declared_or_no_child_better():
    plain = Objective("score", {"score": "max"})
    assert "runtime" not in headline(BEST, INITIAL, [BASELINE], plain).text
    h = headline(None, INITIAL, [BASELINE], OBJ)
    assert "no child beat the initial program on train; initial 0.6000" in h.text
    assert "runtime" not in h.text and h.vs_initial is None
    assert h.vs_baseline.mean == pytest.approx(-0.1667, abs=1e-4)  # the initial program against the baseline


def test_before_the_final_stage_the_line_says_so():
    h = headline(None, Entrant("initial"), [BASELINE], OBJ)
    assert h.text == "no held-out score yet: the final stage has not scored the initial program"


def test_ratio_ignores_workloads_without_a_positive_time():
    assert ratio_ci({"a": 2.0, "b": 0.0}, {"a": 1.0, "b": 1.0}).n == 1


def test_problem_toml_runtime_keys_must_name_objective_metrics(toy_copy):
    t = toy_copy / "problem.toml"
    text = t.read_text()
    t.write_text(text.replace('score = "score"\n', 'score = "score"\nruntime = "wall_ms"\n', 1))
    with pytest.raises(AdrsError, match="objective.runtime: 'wall_ms' is not one of objective.metrics"):
        load(toy_copy)
    t.write_text(text.replace('score = "score"\n', 'score = "score"\nruntime_at_equal = "mse"\n', 1))
    with pytest.raises(AdrsError, match="objective.runtime_at_equal: needs objective.runtime"):
        load(toy_copy)


def _held_out(con, pid: int, metric: str) -> dict[str, float]:
    return dict(con.execute("select workload, value from metrics where program_id = ? and split = 'held-out' "
                            "and metric = ?", (pid, metric)).fetchall())


@pytest.mark.slow  # two CLI subprocesses: a 5-iteration run and its report (~4 s idle, ~9 s on a busy machine)
def test_a_real_run_ends_with_the_line_and_the_report_leads_with_it(toy_copy, tmp_path):
    import sqlite3
    t = toy_copy / "problem.toml"
    # the toy evaluator times nothing the candidate controls; its positive "min" metric mse stands in for
    # a runtime, so the ratio clause is exercised on real, deterministic values
    t.write_text(t.read_text().replace('score = "score"\n', 'score = "score"\nruntime = "mse"\n'
                                       'runtime_at_equal = "score"\n', 1))
    r = adrs("run", str(toy_copy), "--iterations", "5", "--runs-dir", str(tmp_path), "--run-id", "h")
    assert r.returncode == 0, r.stderr
    line = [x for x in r.stdout.splitlines() if x.startswith("Result: ")]
    assert len(line) == 1, r.stdout
    line = line[0]
    # the numbers, recomputed from the lineage store without evolve.run.headline
    con = sqlite3.connect(tmp_path / "h" / "lineage.db")
    progs = con.execute("select id, kind, iteration, score, name from programs where status = 'ok'").fetchall()
    init = next(p for p in progs if p[1] == "initial")
    best = min((p for p in progs if p[1] != "baseline"), key=lambda p: (-p[3], p[0]))
    assert best != init, "5 iterations of the toy problem find a better child (seed 0)"
    a, b = _held_out(con, best[0], "score"), _held_out(con, init[0], "score")
    d = [a[w] - b[w] for w in sorted(a)]
    assert len(d) == 2
    assert (f"best #{best[0]} (iteration {best[2]}) {np.mean(list(a.values())):.4f} ± "
            f"{t_half(list(a.values())):.4f} vs initial {np.mean(list(b.values())):.4f}") in line
    assert f": {np.mean(d):+.4f} [{np.mean(d) - t_half(d):+.4f}, {np.mean(d) + t_half(d):+.4f}]" in line
    base = _held_out(con, next(p[0] for p in progs if p[4] == "exact"), "score")
    assert f"vs best baseline exact {np.mean(list(base.values())):.4f}" in line
    rt_a, rt_b = _held_out(con, best[0], "mse"), _held_out(con, init[0], "mse")
    ratio = math.exp(np.mean([math.log(rt_b[w] / rt_a[w]) for w in sorted(rt_a)]))
    speed = f"{ratio:.3g}x faster" if ratio >= 1 else f"{1 / ratio:.3g}x slower"
    assert f"; mse {np.mean(list(rt_b.values())):.3g} -> {np.mean(list(rt_a.values())):.3g}: {speed}" in line
    assert f"at equal or better score ({np.mean(list(a.values())):.4g} vs {np.mean(list(b.values())):.4g})" in line
    r = adrs("report", str(tmp_path / "h"))
    assert r.returncode == 0, r.stderr
    page = (tmp_path / "h" / "report" / "index.html").read_text()
    shown = re.search(r'<p class="headline">(.*?)</p>', page).group(1)
    assert html.unescape(shown) == line
    assert page.index('class="headline"') < page.index('<table class="kv">')  # the summary leads with it
