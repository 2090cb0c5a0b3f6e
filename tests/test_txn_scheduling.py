"""txn_scheduling: the scheduler model and lower bound against hand-computed cases, validation, the
generator, the held-out ordering (smf far below random), determinism, and the attack set in the real sandbox."""
from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from evaluators.base import ConfigError, InvalidOutput
from evaluators.txn_scheduling import make_evaluator
from evaluators.txn_scheduling.makespan import lower_bound, simulate
from evaluators.txn_scheduling.validate import validate
from evaluators.txn_scheduling.workloads import RONWA_PRIVATE_BASE, RONWA_SHARED, build, parse_id
from evolve import problem
from sandbox.inprocess import InProcessCandidate
from tests import attacks
from tests.attacks import fails, no_gain
from tests.conftest import ROOT

PROBLEM = ROOT / "problems" / "txn_scheduling"
R, W = False, True


def _txns(*specs: str):
    """'wa rx' -> ((True, key a), (False, key x)); keys are letters a=0, b=1, ..."""
    return tuple(tuple((op[0] == "w", ord(op[1]) - ord("a")) for op in s.split()) for s in specs)


def _cand(name: str) -> InProcessCandidate:
    return InProcessCandidate.from_file(PROBLEM / ("initial.py" if name == "initial" else f"baselines/{name}.py"))


@pytest.fixture(scope="module")
def spec():
    return problem.load(PROBLEM)


@pytest.fixture(scope="module")
def evaluator(spec):
    return spec.make_evaluator()


# ---------------------------------------------------------------- the scheduler model, by hand

def test_write_write_conflict_overlaps_by_the_offset():
    txns = _txns("wa rx", "ry wa")
    s = simulate(txns, [0, 1])  # T1's write of a (offset 1) must follow T0's end (2): T1 starts at 1
    assert (s.start, s.end, s.makespan) == ((0, 1), (2, 3), 3)
    assert s.waited_on == (None, 0)
    s = simulate(txns, [1, 0])  # T0's write of a is its first op: it starts when T1 ends
    assert (s.start, s.end, s.makespan) == ((2, 0), (4, 2), 4)


def test_reads_share_and_read_write_conflicts_both_ways():
    assert simulate(_txns("ra rb", "ra rb"), [0, 1]).start == (0, 0)      # read-read: no wait
    assert simulate(_txns("wa", "ra"), [0, 1]).start == (0, 1)            # read after write
    assert simulate(_txns("ra rb", "wa"), [0, 1]).start == (0, 2)         # write after read: lock held to end
    assert simulate(_txns("rb rb ra", "wa"), [0, 1]).start == (0, 3)      # the read lock is taken late, held to end


def test_a_later_transaction_may_start_first_and_waits_use_the_latest_end():
    # T0 writes a (ends 3); T1 reads a (waits to 3, ends 5); T2 writes a: after T1's end (5), not just T0's
    # T3 touches nothing shared and starts at 0 although it is admitted last
    txns = _txns("wa rx ry", "ra rz", "wa", "wq")
    s = simulate(txns, [0, 1, 2, 3])
    assert s.start == (0, 3, 5, 0) and s.end == (3, 5, 6, 1) and s.makespan == 6
    assert s.waited_on == (None, 0, 0, None)


def test_lower_bound_hand_cases():
    # one key, every transaction writes it once at its first op: intervals are whole transactions
    assert lower_bound(_txns("wa", "wa", "wa")).value == 3
    # writers hold a from their offset: (3-1) + (2-0) = 4, plus smallest offset 0; reader 'rb ra' holds 1
    b = lower_bound(_txns("rx wa ry", "wa rz", "rb ra"))
    assert (b.value, b.key, b.writers) == (max(0 + 2 + 2, 0 + 2 + 2 + 1), 0, 2)
    # read-modify-write: the whole span from the read counts, since two writers' spans never overlap
    assert lower_bound(_txns("ra wa", "ra wa")).value == 4
    # no writes at all: the longest transaction
    b = lower_bound(_txns("ra rb rc", "ra"))
    assert (b.value, b.key) == (3, None)


def test_lower_bound_never_exceeds_the_best_order_on_small_random_workloads():
    rng = random.Random(3)
    for _ in range(40):
        n = rng.randint(2, 5)
        txns = tuple(tuple((rng.random() < 0.4, rng.randrange(3)) for _ in range(rng.randint(1, 4)))
                     for _ in range(n))
        best = min(simulate(txns, p).makespan for p in itertools.permutations(range(n)))
        assert lower_bound(txns).value <= best, txns


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize("bad,message", [
    ({"order": [0, 1, 2], "makespan": 1}, "got dict"),
    ("0 1 2", "got str"),
    (None, "got NoneType"),
    (([0, 1, 2], 1), r"order\[0\] = \[0, 1, 2\] is not an integer"),
    ([0, 1.0, 2], r"order\[1\] = 1.0 is not an integer"),
    ([0, True, 2], r"order\[1\] = True is not an integer"),
    ([0, 1, 3], r"order\[2\] = 3 is not a transaction index in \[0, 3\)"),
    ([0, -1, 2], r"order\[1\] = -1"),
    ([0, 1], r"length 2\): missing transaction 2"),
    ([0, 1, 1], r"transaction 1 appears 2 times \(positions 1, 2\); missing transaction 2"),
    ([2, 1, 0, 2], r"length 4\): transaction 2 appears 2 times \(positions 0, 3\)"),
    ([], "length 0"),
    (np.array([[0, 1, 2]]), "1-D integer array"),
    (np.array([0.0, 1.0, 2.0]), "1-D integer array"),
])
def test_validation_rejects(bad, message):
    with pytest.raises(InvalidOutput, match=message):
        validate(bad, 3)


def test_validation_accepts_lists_tuples_and_int_arrays():
    assert validate([2, 0, 1], 3) == [2, 0, 1]
    assert validate((2, 0, 1), 3) == [2, 0, 1]
    assert validate(np.array([2, 0, 1], dtype=np.int32), 3) == [2, 0, 1]


def test_many_missing_are_summarised():
    with pytest.raises(InvalidOutput, match=r"missing transactions 1, 2, 3, 4, 5 and 4 more"):
        validate([0], 10)


# ---------------------------------------------------------------- workloads

def test_generator_is_reproducible_and_families_differ():
    assert build("hot:seed3").txns == build("hot:seed3").txns
    assert build("hot:seed3").txns != build("hot:seed4").txns
    assert build("rmw:seed3").n == 100 and build("rmw:seed3:n40").n == 40


def test_hot_family_is_a_16_op_zipf_mix():
    w = build("hot:seed0:n300")
    assert all(len(t) == 16 for t in w.txns)
    keys = np.array([k for t in w.txns for _, k in t])
    writes = np.array([wr for t in w.txns for wr, _ in t])
    assert np.bincount(keys).argmax() == 0 and (keys == 0).mean() > 0.1   # key 0 is the hot key
    assert len(set(keys.tolist())) > 200                                   # ... among a long tail
    assert 0.15 < writes.mean() < 0.25


def test_rmw_family_reads_then_writes_its_keys_in_two_classes():
    w = build("rmw:seed0:n200")
    lengths = set()
    for t in w.txns:
        m = len(t) // 2
        assert all(not wr for wr, _ in t[:m]) and all(wr for wr, _ in t[m:])
        assert [k for _, k in t[:m]] == [k for _, k in t[m:]]
        lengths.add(m)
    assert lengths == {1, 2, 5, 6, 7, 8}


def test_ronwa_family_reads_one_shared_key_and_writes_another():
    w = build("ronwa:seed0:n200")
    private = [k for t in w.txns for _, k in t if k >= RONWA_PRIVATE_BASE]
    assert len(private) == len(set(private))            # private keys are never shared
    for t in w.txns:
        shared = [(j, wr, k) for j, (wr, k) in enumerate(t) if k < RONWA_SHARED]
        assert len(shared) == 2 and 4 <= len(t) <= 16
        (j_r, wr_r, k_r), (j_w, wr_w, k_w) = shared
        assert not wr_r and wr_w and k_r != k_w and j_r < len(t) // 2 <= j_w


@pytest.mark.parametrize("wid,message", [
    ("tpcc:seed0", "unknown family"), ("hot", "missing seed"), ("hot:seed1:seed2", "given twice"),
    ("hot:seedx", "bad part"), ("hot:seed1:n1", "n must be"), ("hot:seed1:n99999", "n must be"),
])
def test_bad_ids_are_rejected(evaluator, wid, message):
    with pytest.raises(ConfigError, match=message):
        evaluator.check_workload(wid)


def test_params_are_checked():
    with pytest.raises(ConfigError, match="unknown txn_scheduling param 'seed'"):
        make_evaluator({"seed": 1}, PROBLEM)


def test_train_and_held_out_are_disjoint_and_held_out_is_larger(spec):
    seeds = {s: {parse_id(w)[1] for w in getattr(spec.workloads, s)} for s in ("train", "held_out", "quick")}
    assert not seeds["train"] & seeds["held_out"] and not seeds["quick"] & seeds["held_out"]
    assert {parse_id(w)[0] for w in spec.workloads.train} == {"hot", "rmw", "ronwa"}
    assert max(parse_id(w)[2] for w in spec.workloads.held_out) > max(parse_id(w)[2] for w in spec.workloads.train)


# ---------------------------------------------------------------- scores, ordering, determinism

def test_score_is_the_bound_over_the_recomputed_makespan(evaluator):
    r = evaluator.evaluate(_cand("initial"), "rmw:seed1")
    w = build("rmw:seed1")
    order = sorted(range(w.n), key=lambda t: (sum(wr for wr, _ in w.txns[t]), t))
    assert r.metrics["makespan"] == simulate(w.txns, order).makespan
    assert r.metrics["score"] == pytest.approx(lower_bound(w.txns).value / r.metrics["makespan"])
    assert 0 < r.metrics["score"] <= 1 and "makespan" in r.feedback and "lower bound" in r.feedback


def test_evaluation_is_deterministic(evaluator):
    a = evaluator.evaluate(_cand("smf"), "ronwa:seed2")
    b = make_evaluator({}, PROBLEM).evaluate(_cand("smf"), "ronwa:seed2")
    assert a.metrics == b.metrics and a.feedback == b.feedback


@pytest.mark.slow
def test_smf_beats_random_by_a_wide_margin_on_held_out(spec, evaluator):
    """ADRS's baseline ordering: shortest-makespan-first far below a random order (ADRS: -34% offline)."""
    for wid in spec.workloads.held_out:
        smf = evaluator.evaluate(_cand("smf"), wid).metrics
        rnd = evaluator.evaluate(_cand("random_order"), wid).metrics
        assert smf["makespan"] <= 0.8 * rnd["makespan"], (wid, smf["makespan"], rnd["makespan"])
        assert smf["score"] > rnd["score"] + 0.15, wid


def test_smf_beats_random_on_the_small_held_out_workloads(spec, evaluator):
    small = [w for w in spec.workloads.held_out if parse_id(w)[2] == 100]
    assert len(small) == 3
    gains = [1 - evaluator.evaluate(_cand("smf"), w).metrics["makespan"]
             / evaluator.evaluate(_cand("random_order"), w).metrics["makespan"] for w in small]
    assert min(gains) > 0.2 and sum(gains) / 3 > 0.3, gains


# ---------------------------------------------------------------- the attack set, through the real sandbox

SIG = "def schedule(txns):\n"
IDENTITY = "    return list(range(len(txns)))\n"
QUICK = "hot:seed50:n30"
ATTACKS = {
    **attacks.shared(SIG, IDENTITY, "got str", QUICK),
    "lies_in_a_dict": fails(SIG + "    return {'order': list(range(len(txns))), 'makespan': 1, 'score': 1.0}\n",
                            "invalid_output", "got dict", QUICK),
    "lies_alongside_the_order": fails(SIG + "    return list(range(len(txns))), 1\n",
                                      "invalid_output", "is not an integer", QUICK),
    "partial_order": fails(SIG + "    return list(range(len(txns) - 3))\n",
                           "invalid_output", "missing transactions", QUICK),
    "duplicated_order": fails(SIG + "    return [0] + list(range(len(txns) - 1))\n",
                              "invalid_output", "appears 2 times", QUICK),
    # may run (what it patches or edits lives only in its own process) but must gain nothing
    "patches_the_simulator": no_gain(SIG + "    import evaluators.txn_scheduling.makespan as m\n"
                                     "    m.simulate = lambda txns, order: m.Schedule((0,) * len(txns), "
                                     "(1,) * len(txns), (None,) * len(txns), 1)\n"
                                     "    m.lower_bound = lambda txns: m.Bound(10**9, None, 0)\n" + IDENTITY),
    "edits_its_input": no_gain(SIG + "    n = len(txns)\n    for t in txns:\n        t.clear()\n"
                               "    txns.append([['w', 0]])\n    return list(range(n))\n"),
}


bench = attacks.bench_fixture(PROBLEM, QUICK)


@pytest.fixture(scope="module")
def honest(bench):
    """The identity order, honestly returned: what every no-gain attack must not beat."""
    m = bench.metrics(SIG + IDENTITY)
    assert m["score"] < 1
    return m


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_gain_nothing_and_failures_carry_a_reason(bench, honest, name):
    """Each attack is recorded with its reason, or runs and is scored on the real workload by the trusted
    model exactly as the honest order (or the sandbox refuses what it tried)."""
    ATTACKS[name].check(bench.score(ATTACKS[name].source), honest, ("makespan", "score"))
