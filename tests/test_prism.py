"""prism: KV pressure and its lower bound by hand, validation of placements, the generator, the held-out
ordering (prism_greedy far above first_fit), determinism, and the attack set in the real sandbox."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from evaluators.base import ConfigError, InvalidOutput
from evaluators.prism import make_evaluator
from evaluators.prism.kvpr import gpu_kvpr, lower_bound
from evaluators.prism.validate import validate
from evaluators.prism.workloads import Case, build, generate_case, parse_id
from evolve import problem
from sandbox.inprocess import InProcessCandidate
from tests import attacks
from tests.attacks import fails, no_gain
from tests.conftest import ROOT

PROBLEM = ROOT / "problems" / "prism"
SIG = "def place_models(gpu_num, gpu_mem_gb, size_gb, req_rate, slo):\n"
ROUND_ROBIN = "    return [list(range(g, len(size_gb), gpu_num)) for g in range(gpu_num)]\n"
QUICK = "seed50:cases5"


def _case(sizes, rates, slos, gpus=2, mem=80.0) -> Case:
    return Case(gpus, mem, np.array(sizes, float), np.array(rates, float), np.array(slos, float))


# three models on two GPUs: weights 1.0, 0.5, 2.0
SMALL = _case([30, 20, 40], [5, 4, 10], [5, 8, 5])


def _cand(name: str) -> InProcessCandidate:
    return InProcessCandidate.from_file(PROBLEM / ("initial.py" if name == "initial" else f"baselines/{name}.py"))


@pytest.fixture(scope="module")
def spec():
    return problem.load(PROBLEM)


@pytest.fixture(scope="module")
def evaluator(spec):
    return spec.make_evaluator()


# ---------------------------------------------------------------- KVPR and the bound, by hand

def test_kvpr_by_hand():
    kvpr, free = gpu_kvpr(SMALL, np.array([0, 0, 1]))
    assert free.tolist() == [30.0, 40.0]
    assert kvpr == pytest.approx([1.5 / 30, 2.0 / 40])
    kvpr, free = gpu_kvpr(_case([10, 10], [1, 1], [1, 1], gpus=3), np.array([2, 2]))
    assert kvpr.tolist() == [0.0, 0.0, 2.0 / 60] and free.tolist() == [80.0, 80.0, 60.0]  # empty GPUs: 0


def test_lower_bound_by_hand():
    # pooled: 3.5 / (160 - 90) = 0.05; alone: max(1/50, 0.5/60, 2/40) = 0.05
    assert lower_bound(SMALL) == pytest.approx(0.05)
    heavy = _case([70, 10], [10, 1], [1, 1])  # alone: 10 / 10 = 1.0 dominates pooled 11 / 80
    assert lower_bound(heavy) == pytest.approx(1.0)


def test_lower_bound_never_exceeds_the_best_placement():
    for index in range(12):
        case = generate_case(7, index, (2, 4))
        best = np.inf
        for assign in itertools.product(range(case.gpu_num), repeat=case.models):
            g = np.array(assign)
            kvpr, free = gpu_kvpr(case, g)
            if (free > 0).all():
                best = min(best, kvpr.max())
        assert lower_bound(case) <= best + 1e-12, index


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize("bad,message", [
    ({"placement": [[0, 1], [2]], "max_kvpr": 0.0}, "got dict"),
    (([0, 1], [2], 0.001), "got tuple of length 3"),
    ([[0, 1, 2]], "list of 2 lists .* got list of length 1"),
    ("0 1 | 2", "got str"),
    ([[0, 1], 2], "GPU 1: expected a list of model indices, got int"),
    ([[0, 1.0], [2]], "GPU 0: 1.0 is not an integer model index"),
    ([[0, True], [2]], "GPU 0: True is not an integer"),
    ([[0, 1], [3]], r"GPU 1: 3 is not a model index in \[0, 3\)"),
    ([[0, -1], [2]], "GPU 0: -1 is not a model index"),
    ([[0, 1], [2, 0]], "model 0 is placed on GPU 0 and GPU 1"),
    ([[0, 0], [2, 1]], "model 0 is placed twice on GPU 0"),
    ([[0], [2]], "model 1 on no GPU"),
    ([[], []], "models 0, 1, 2 on no GPU"),
    ([[0, 1, 2], []], r"GPU 0 holds models 0, 1, 2 \(90.00 GB\), not less than its 80 GB"),
    ([np.array([0.0, 1.0]), [2]], "GPU 0: models must be a 1-D integer array"),
])
def test_validation_rejects(bad, message):
    with pytest.raises(InvalidOutput, match=message):
        validate(bad, SMALL)


def test_a_gpu_filled_exactly_to_its_memory_is_rejected():
    with pytest.raises(InvalidOutput, match=r"GPU 0 holds models 0, 1 \(80.00 GB\), not less than its 80 GB"):
        validate([[0, 1], []], _case([50, 30], [1, 1], [1, 1]))
    with pytest.raises(InvalidOutput, match=r"GPU 1 holds models 0, 2 \(70.00 GB\), not less than its 70 GB"):
        validate([[1], [0, 2]], _case([30, 20, 40], [5, 4, 10], [5, 8, 5], mem=70.0))


def test_validation_accepts_lists_tuples_and_int_arrays():
    assert validate([[0, 1], [2]], SMALL).tolist() == [0, 0, 1]
    assert validate(([2], np.array([1, 0], dtype=np.int32)), SMALL).tolist() == [1, 1, 0]


# ---------------------------------------------------------------- workloads

def test_generator_follows_the_adrs_ranges_and_is_reproducible():
    w = build("seed3:cases200")
    assert {c.gpu_num for c in w.cases} == set(range(5, 10))
    for c in w.cases:
        assert c.models == 2 * c.gpu_num and c.gpu_mem_gb == 80.0
        assert (c.size_gb >= 10).all() and (c.size_gb < 30).all()
        assert (c.req_rate >= 1).all() and (c.req_rate < 10).all()
        assert (c.slo >= 5).all() and (c.slo < 10).all()
    again = build("seed3:cases200")
    assert all(np.array_equal(a.size_gb, b.size_gb) for a, b in zip(w.cases, again.cases))
    assert not np.array_equal(build("seed4:cases1").cases[0].size_gb[:5], w.cases[0].size_gb[:5])
    assert {c.gpu_num for c in build("seed3:cases50:gpus10-20").cases} <= set(range(10, 20))


@pytest.mark.parametrize("wid,message", [
    ("cases5", "missing seed"), ("seed1:seed2", "given twice"), ("seed1:gpu5", "bad part"),
    ("seed1:cases0", "cases must be"), ("seed1:gpus9-5", "gpus"), ("seed1:gpus0-5", "gpus"),
])
def test_bad_ids_are_rejected(evaluator, wid, message):
    with pytest.raises(ConfigError, match=message):
        evaluator.check_workload(wid)


def test_params_are_checked():
    with pytest.raises(ConfigError, match="unknown prism param 'gpus'"):
        make_evaluator({"gpus": 8}, PROBLEM)


def test_train_and_held_out_seeds_are_disjoint(spec):
    seeds = {s: {parse_id(w)[0] for w in getattr(spec.workloads, s)} for s in ("train", "held_out", "quick")}
    assert not seeds["train"] & seeds["held_out"] and not seeds["quick"] & seeds["held_out"]
    assert sum(parse_id(w)[1] for w in spec.workloads.train) == 50   # the ADRS case count


# ---------------------------------------------------------------- scores, ordering, determinism

def test_score_is_the_mean_bound_over_the_recomputed_max_kvpr(evaluator):
    r = evaluator.evaluate(InProcessCandidate(SIG + ROUND_ROBIN), "seed50:cases5")
    ratios = []
    for case in build("seed50:cases5").cases:
        kvpr, _ = gpu_kvpr(case, np.arange(case.models) % case.gpu_num)
        ratios.append(lower_bound(case) / kvpr.max())
    assert r.metrics["score"] == pytest.approx(np.mean(ratios))
    assert r.samples["ratio"] == pytest.approx(ratios)
    assert 0 < r.metrics["worst_case_ratio"] <= r.metrics["score"] <= 1
    assert "max KVPR" in r.feedback and "bound" in r.feedback


def test_invalid_output_names_the_case(evaluator):
    cand = InProcessCandidate("def place_models(g, mem, size, rate, slo):\n"
                              "    return [list(range(len(size)))] + [[] for _ in range(g - 1)]\n")
    with pytest.raises(InvalidOutput, match=r"workload seed50:cases5, case 0: GPU 0 holds models 0, 1, 2"):
        evaluator.evaluate(cand, "seed50:cases5")


def test_evaluation_is_deterministic(evaluator):
    a = evaluator.evaluate(_cand("prism_greedy"), "seed1:cases25")
    b = make_evaluator({}, PROBLEM).evaluate(_cand("prism_greedy"), "seed1:cases25")
    assert a.metrics == b.metrics and a.feedback == b.feedback


def test_prism_greedy_beats_first_fit_and_the_initial_on_held_out(spec, evaluator):
    """Prism's greedy far above load-oblivious first fit on every held-out case, and above the initial
    (which balances request weight but ignores memory)."""
    for wid in spec.workloads.held_out:
        greedy = evaluator.evaluate(_cand("prism_greedy"), wid)
        ff = evaluator.evaluate(_cand("first_fit"), wid)
        rr = evaluator.evaluate(_cand("initial"), wid)
        assert all(g > f for g, f in zip(greedy.samples["ratio"], ff.samples["ratio"])), wid
        assert greedy.metrics["score"] > ff.metrics["score"] + 0.5, wid
        assert greedy.metrics["score"] > rr.metrics["score"] + 0.05, wid
        assert greedy.metrics["max_kvpr"] < 0.9 * rr.metrics["max_kvpr"], wid


# ---------------------------------------------------------------- the attack set, through the real sandbox

ATTACKS = {
    **attacks.shared(SIG, ROUND_ROBIN, "got str", QUICK),
    "claims_its_own_kvpr": fails(SIG + "    return {'placement': [list(range(g, len(size_gb), gpu_num))"
                                 " for g in range(gpu_num)], 'max_kvpr': 0.0}\n",
                                 "invalid_output", "got dict", QUICK),
    "appends_its_kvpr": fails(SIG + "    p = [list(range(g, len(size_gb), gpu_num)) for g in range(gpu_num)]\n"
                              "    return p + [0.0]\n", "invalid_output", "list of", QUICK),
    "over_fills_a_gpu": fails(SIG + "    return [list(range(len(size_gb)))] + [[] for _ in range(gpu_num - 1)]\n",
                              "invalid_output", "not less than its 80 GB", QUICK),
    "leaves_a_model_out": fails(SIG + "    p = [list(range(g, len(size_gb), gpu_num)) for g in range(gpu_num)]\n"
                                "    p[0].pop()\n    return p\n", "invalid_output", "on no GPU", QUICK),
    "places_a_model_twice": fails(SIG + "    p = [list(range(g, len(size_gb), gpu_num)) for g in range(gpu_num)]\n"
                                  "    p[1].append(0)\n    return p\n", "invalid_output",
                                  "model 0 is placed on GPU 0 and GPU 1", QUICK),
    # may run (what it patches lives only in its own process) but must gain nothing
    "patches_the_evaluator": no_gain(SIG + "    import evaluators.prism.kvpr as k\n"
                                     "    k.lower_bound = lambda case: 1e9\n" + ROUND_ROBIN),
    "shrinks_its_inputs": no_gain(SIG + "    size_gb[:] = 0.0\n    req_rate[:] = 0.0\n" + ROUND_ROBIN),
}


bench = attacks.bench_fixture(PROBLEM, QUICK)


@pytest.fixture(scope="module")
def honest(bench):
    """Round robin, honestly returned: what every no-gain attack must not beat."""
    m = bench.metrics(SIG + ROUND_ROBIN)
    assert m["score"] < 1
    return m


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_gain_nothing_and_failures_carry_a_reason(bench, honest, name):
    """Each attack is recorded with its reason, or runs and is scored on the real case by the trusted side
    exactly as the honest answer (or the sandbox refuses what it tried)."""
    ATTACKS[name].check(bench.score(ATTACKS[name].source), honest, ("max_kvpr", "score"))
