"""`adrs replay RUN --check` compares the lineage and the deterministic metrics; noisy metrics (measured time, as
an evaluator declares them, per instance) are shown side by side with their difference, never compared."""
import shutil

from evolve.run.replay import NoisyComparison, compare_metrics
from tests.conftest import TOY, adrs

NOISY_EVALUATOR = '''
import random
import time


class NoisyToy(ToyEvaluator):
    """The toy plus a measured wall-clock metric, declared noisy on the instance (as EPLB does)."""

    def __init__(self, points):
        super().__init__(points)
        self.noisy_metrics = ("runtime_ms",)

    def evaluate(self, candidate, workload_id):
        t0 = time.perf_counter()
        r = super().evaluate(candidate, workload_id)
        jitter = random.SystemRandom().uniform(1.0, 2.0)   # two measurements of the same code never agree
        r.metrics["runtime_ms"] = (time.perf_counter() - t0) * 1e3 + jitter
        return r


_plain = make_evaluator


def make_evaluator(params, problem_dir):
    return NoisyToy(_plain(params, problem_dir).points)
'''


def noisy_toy(tmp_path):
    dst = tmp_path / "noisy_toy"
    shutil.copytree(TOY, dst, ignore=shutil.ignore_patterns("__pycache__"))
    ev = dst / "evaluator.py"
    ev.write_text(ev.read_text() + NOISY_EVALUATOR)
    toml = dst / "problem.toml"
    toml.write_text(toml.read_text().replace('metrics = { score = "max", mse = "min" }',
                                             'metrics = { score = "max", mse = "min", runtime_ms = "min" }'))
    return dst


def test_replay_check_passes_with_noisy_metrics_and_shows_them(tmp_path):
    problem = noisy_toy(tmp_path)
    r = adrs("run", str(problem), "--iterations", "4", "--runs-dir", str(tmp_path / "runs"), "--run-id", "n")
    assert r.returncode == 0, r.stderr
    rp = adrs("replay", str(tmp_path / "runs" / "n"), "--check")
    assert rp.returncode == 0, rp.stdout + rp.stderr
    assert "lineage matches n: 4 iterations identical, and every deterministic metric" in rp.stdout
    row = next(line for line in rp.stdout.splitlines() if line.strip("│ ").startswith("runtime_ms"))
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells[0] == "runtime_ms" and int(cells[1]) > 0
    original, replay, diff = float(cells[2]), float(cells[3]), float(cells[4])
    assert original > 1 and replay > 1 and abs(diff - (replay - original)) <= 1e-3 * max(original, replay)
    assert "decision_s" in rp.stdout                   # the engine's own timing metric is noisy too
    assert "mse" not in rp.stdout.split("noisy metrics")[1].split("lineage")[0]   # deterministic: compared


def test_compare_metrics_catches_a_deterministic_change_and_pairs_noisy_ones():
    key = ("child", 3, "", "train", "w0")
    a = {key + ("mse",): 0.5, key + ("runtime_ms",): 10.0, key + ("decision_s",): 0.1}
    b = {key + ("mse",): 0.5, key + ("runtime_ms",): 14.0, key + ("decision_s",): 0.3}
    noisy = frozenset({"runtime_ms", "decision_s"})
    check = compare_metrics(a, b, noisy)
    assert check.difference == "" and check.baselines == []
    side = check.noisy
    assert side == [NoisyComparison("decision_s", 1, 0.1, 0.3, side[0].max_abs_diff),
                    NoisyComparison("runtime_ms", 1, 10.0, 14.0, 4.0)]
    assert side[1].diff == 4.0
    changed = {**b, key + ("mse",): 0.25}
    assert compare_metrics(a, changed, noisy).difference == "child of iteration 3: mse on train w0: 0.5 then 0.25"
    missing = {k: v for k, v in b.items() if k[-1] != "mse"}   # a deterministic value only one run has
    assert "mse on train w0: 0.5 then None" in compare_metrics(a, missing, noisy).difference
    # a noisy score: finalists may differ, so only values both runs measured are compared
    assert compare_metrics(a, missing, noisy, noisy_score=True).difference == ""
    # a baseline scored afresh (a time-limited solver) is named, not failed: it is no part of the lineage
    base = ("baseline", None, "ilp", "held-out", "w7", "balancedness")
    check = compare_metrics({**a, base: 0.82}, {**b, base: 0.81}, noisy)
    assert check.difference == "" and check.baselines == ["ilp: balancedness on held-out w7: 0.82 then 0.81"]


def test_noisy_metrics_come_from_the_evaluator_instance():
    from evolve import problem as pm
    from evolve.run.replay import noisy_metrics
    eplb = noisy_metrics(pm.load("eplb"))
    assert {"runtime_ms", "score", "decision_s"} <= eplb        # EPLB's score mixes in measured runtime
    assert noisy_metrics(pm.load(str(TOY))) == {"decision_s"}


def test_replaying_a_completion_order_run_says_it_cannot_be_exact(tmp_path):
    r = adrs("run", str(TOY), "--iterations", "3", "--order", "completion",
             "--runs-dir", str(tmp_path / "runs"), "--run-id", "c")
    assert r.returncode == 0, r.stderr
    rp = adrs("replay", str(tmp_path / "runs" / "c"))
    assert rp.returncode == 0, rp.stdout + rp.stderr
    assert "committed in completion order" in rp.stdout and "lineage can differ" in rp.stdout
