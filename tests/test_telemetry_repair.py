"""telemetry_repair: routing and conservation of the true counters, fault injection, validation of every
broken repair, hand-computed scores, workload ids, the held-out ordering (HODOR-style repair far above no
repair), determinism, and the attack set through the real sandbox, including candidates that hunt for
the ground truth (in memory, on disk, or by regenerating it from the evaluator's code)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from evaluators.base import ConfigError, InvalidOutput
from evaluators.telemetry_repair import make_evaluator
from evaluators.telemetry_repair.faults import KINDS, Corrupted, corrupt, within
from evaluators.telemetry_repair.scoring import Tally, validate
from evaluators.telemetry_repair.topology import _build
from evaluators.telemetry_repair.traffic import Counters, Router
from evaluators.telemetry_repair.workloads import Interval, build
from evolve import problem
from sandbox.inprocess import InProcessCandidate
from tests import attacks
from tests.attacks import fails
from tests.conftest import ROOT

PROBLEM = ROOT / "problems" / "telemetry_repair"
QUICK = "wan:seed50:routers12:intervals2"


def _square():
    """h0 - r0 = {r1, r2} = r3 - h1: two equal-cost paths between the routers of the two hosts."""
    names = ["r0", "r1", "r2", "r3", "h0", "h1"]
    edges = [(0, 1, 1e5), (0, 2, 1e5), (1, 3, 1e5), (2, 3, 1e5), (0, 4, 1e4), (3, 5, 1e4)]
    return _build(names, [True] * 4 + [False] * 2, edges)


def _iface(topo, u, v):
    return next(i for i in range(topo.n_ifaces) if topo.node[i] == u and topo.node[topo.peer[i]] == v)


# ---------------------------------------------------------------- true counters

def test_ecmp_routing_by_hand():
    topo = _square()
    c = Router(topo).route(np.array([[0.0, 100.0], [40.0, 0.0]]))  # h0 -> h1: 100, h1 -> h0: 40
    assert c.tx[_iface(topo, 4, 0)] == 100 and c.rx[_iface(topo, 4, 0)] == 40
    assert c.tx[_iface(topo, 0, 1)] == c.tx[_iface(topo, 0, 2)] == 50   # split evenly over r1 and r2
    assert c.tx[_iface(topo, 3, 1)] == c.tx[_iface(topo, 3, 2)] == 20
    assert c.rx[_iface(topo, 5, 3)] == 100 and c.tx[_iface(topo, 5, 3)] == 40


@pytest.mark.parametrize("wid", ["wan:seed7:routers20", "clos:seed8:spines3:leaves6:hosts3"])
def test_truth_keeps_symmetry_and_conservation(wid):
    w = build(wid)
    topo = w.topology
    for iv in w.intervals:
        t = iv.truth
        assert np.array_equal(t.tx, t.rx[topo.peer])                      # a link's tx is the rx at the other end
        flow_in = np.bincount(topo.node, weights=t.rx, minlength=topo.n_nodes)
        flow_out = np.bincount(topo.node, weights=t.tx, minlength=topo.n_nodes)
        r = topo.is_router
        assert np.allclose(flow_in[r], flow_out[r], rtol=1e-12)            # routers forward everything
        assert (flow_out[~r] > 0).all() and (flow_in[~r] > 0).all()        # hosts are sources and sinks
        assert (t.tx / topo.capacity).max() < 1.0


# ---------------------------------------------------------------- faults

def test_within_tolerance():
    assert within(np.array([101.9, 102.1, 0.19, 0.21]), np.array([100.0, 100.0, 0.0, 0.0])).tolist() == \
        [True, False, True, False]  # 2%, at least 0.2 Mbps


def test_corruption_marks_exactly_the_counters_outside_tolerance():
    w = build("wan:seed3:routers30:faults0.2:routerfaults2")
    for iv in w.intervals:
        c, t = iv.corrupted, iv.truth
        assert np.array_equal(c.bad_tx, ~within(c.observed.tx, t.tx))
        assert np.array_equal(c.bad_rx, ~within(c.observed.rx, t.rx))
        assert (c.kind_tx[c.bad_tx] > 0).all() and (c.kind_rx[c.bad_rx] > 0).all()  # noise alone stays inside
        for r in c.faulty_routers:
            ifaces = np.flatnonzero(w.topology.node == r)
            assert (c.kind_tx[ifaces] == KINDS.index("router")).all()
        assert len(c.faulty_routers) == 2


def test_zeroing_an_idle_counter_is_not_a_corruption():
    topo = _square()
    truth = Counters(np.zeros(topo.n_ifaces), np.zeros(topo.n_ifaces))
    c = corrupt(topo, truth, 0.5, 1, np.random.default_rng(0))
    assert not c.bad_tx.any() and not c.bad_rx.any()


def test_workloads_are_reproducible_and_seeds_differ():
    a, b, c = build("wan:seed5:routers16"), build("wan:seed5:routers16"), build("wan:seed6:routers16")
    assert np.array_equal(a.intervals[1].corrupted.observed.tx, b.intervals[1].corrupted.observed.tx)
    assert not np.array_equal(a.intervals[1].truth.tx, c.intervals[1].truth.tx)


@pytest.mark.parametrize("wid,message", [
    ("mesh:seed0:routers10", "unknown topology"), ("wan:seed0", "missing routers"),
    ("wan:seed0:routers10:spines2", "bad part"), ("clos:seed0:spines2", "missing leaves"),
    ("wan:seed0:routers10:faults0.9", "faults must be"), ("wan:seed0:routers3", "routers must be"),
    ("wan:seed0:routers10:intervals1.5", "intervals must be an integer"), ("wan:seed0:seed1:routers9", "given twice"),
])
def test_bad_workload_ids(wid, message):
    with pytest.raises(ConfigError, match=message):
        make_evaluator({}, PROBLEM).check_workload(wid)


def test_unknown_param():
    with pytest.raises(ConfigError, match="unknown telemetry_repair param 'tolerance'"):
        make_evaluator({"tolerance": 0.1}, PROBLEM)


# ---------------------------------------------------------------- validation and scoring

def _interval():
    """4 interfaces; truth 100/50/100/50; reported: tx[0] zeroed, rx[3] doubled."""
    truth = Counters(np.array([100.0, 50.0, 100.0, 50.0]), np.array([50.0, 100.0, 50.0, 100.0]))
    obs = Counters(np.array([0.0, 50.0, 100.0, 50.0]), np.array([50.0, 100.0, 50.0, 200.0]))
    bad_tx, bad_rx = ~within(obs.tx, truth.tx), ~within(obs.rx, truth.rx)
    kinds = np.zeros(4, dtype=np.int64)
    return Interval(truth, Corrupted(obs, bad_tx, bad_rx, kinds + bad_tx, kinds + 2 * bad_rx, ()))


def test_scores_by_hand():
    iv = _interval()
    # fixes tx[0], leaves rx[3], breaks tx[1] (a good counter): fixed 1, broken 1 of 2 corrupted
    t = Tally()
    t.add(iv, validate({"tx": [100.0, 70.0, 100.0, 50.0], "rx": [50.0, 100.0, 50.0, 200.0]}, 4))
    assert (t.corrupted, t.fixed, t.broken) == (2, 1, 1)
    assert t.repair() == 0.0                                  # (1 - 1) / 2
    # flagged by change: tx[0] and tx[1]; TP 1, FP 1, FN 1 (rx[3]), TN 5: MCC = (5 - 1) / sqrt(2*2*6*6) = 1/3
    assert t.detection() == pytest.approx(1 / 3)
    assert t.score() == pytest.approx(0.2 / 3)
    perfect = Tally()
    perfect.add(iv, validate({"tx": iv.truth.tx, "rx": iv.truth.rx,
                              "suspect_tx": [0.9, 0, 0, 0], "suspect_rx": [0, 0, 0, 0.7]}, 4))
    assert perfect.repair() == perfect.detection() == perfect.score() == 1.0
    nothing = Tally()
    nothing.add(iv, validate({"tx": iv.corrupted.observed.tx, "rx": iv.corrupted.observed.rx}, 4))
    assert nothing.score() == 0.0 and nothing.ok == 6
    everything = Tally()  # flags every counter: no better than chance
    everything.add(iv, validate({"tx": iv.corrupted.observed.tx, "rx": iv.corrupted.observed.rx,
                                 "suspect_tx": [1.0] * 4, "suspect_rx": [1.0] * 4}, 4))
    assert everything.detection() == 0.0 and everything.score() == 0.0


@pytest.mark.parametrize("result,message", [
    ([1, 2, 3, 4], "must return a dict"),
    ({"tx": [1.0] * 4}, "must return 'rx'"),
    ({"tx": [1.0] * 4, "rx": [1.0] * 4, "score": 1.0}, "unknown key 'score'"),
    ({"tx": [1.0] * 3, "rx": [1.0] * 4}, r"'tx' shape \(3,\)"),
    ({"tx": [1.0, float("nan"), 1.0, 1.0], "rx": [1.0] * 4}, r"'tx'\[1\] is not finite"),
    ({"tx": [1.0] * 4, "rx": [1.0, -2.0, 1.0, 1.0]}, r"'rx'\[1\] = -2: rates are never negative"),
    ({"tx": ["a"] * 4, "rx": [1.0] * 4}, "'tx' must hold numbers"),
    ({"tx": [True] * 4, "rx": [1.0] * 4}, "'tx' must hold numbers"),
    ({"tx": [1.0] * 4, "rx": [1.0] * 4, "suspect_tx": [0, 0, 1.5, 0]}, r"'suspect_tx'\[2\] = 1.5 is not in \[0, 1\]"),
])
def test_validation_rejects(result, message):
    with pytest.raises(InvalidOutput, match=message):
        validate(result, 4)


def test_evaluator_names_the_interval_of_an_invalid_repair():
    cand = InProcessCandidate("def repair(topology, counters):\n    return {'tx': counters['tx']}\n")
    with pytest.raises(InvalidOutput, match="interval 0: repair must return 'rx'"):
        make_evaluator({}, PROBLEM).evaluate(cand, QUICK)


# ---------------------------------------------------------------- programs on workloads

def _metrics(name: str, wid: str) -> dict[str, float]:
    path = PROBLEM / ("initial.py" if name == "initial" else f"baselines/{name}.py")
    return make_evaluator({}, PROBLEM).evaluate(InProcessCandidate.from_file(path), wid).metrics


def test_every_program_valid_bounded_and_deterministic():
    for name in ("initial", "no_repair", "hodor"):
        a, b = _metrics(name, QUICK), _metrics(name, QUICK)
        assert a == b and 0.0 <= a["score"] <= 1.0
    assert _metrics("no_repair", QUICK)["score"] == 0.0


def test_hodor_far_above_no_repair_on_held_out():
    spec = problem.load(PROBLEM)
    scores = {n: [_metrics(n, w)["score"] for w in spec.workloads.held_out] for n in ("no_repair", "hodor", "initial")}
    for wid, hodor, none in zip(spec.workloads.held_out, scores["hodor"], scores["no_repair"]):
        assert none == 0.0 and hodor > 0.5, (wid, hodor)
    assert np.mean(scores["hodor"]) > np.mean(scores["initial"]) + 0.15


def test_train_and_held_out_seeds_disjoint():
    spec = problem.load(PROBLEM)
    seeds = lambda ids: {w.split("seed")[1].split(":")[0] for w in ids}  # noqa: E731
    assert not seeds(spec.workloads.train) & seeds(spec.workloads.held_out)
    assert spec.family == "repair" and spec.entry.names == ("repair",)


# ---------------------------------------------------------------- the attack set, through the real sandbox

GRAB = "def repair(topology, counters):\n"
AS_REPORTED = "    return {'tx': counters['tx'], 'rx': counters['rx']}\n"
ATTACKS = {
    **attacks.shared(GRAB, AS_REPORTED, "must return a dict"),
    "returns_a_file": fails(GRAB + "    return {'tx': open('/etc/passwd').read(), 'rx': counters['rx']}\n",
                            ("exception", "invalid_output")),
    "reports_its_score": fails(GRAB + "    return {'tx': counters['tx'], 'rx': counters['rx'], 'score': 1.0, "
                               "'repair': 1.0}\n", "invalid_output", "unknown key 'repair'"),
}
# hunters for the truth (never sent): in its process's memory, or regenerated from the evaluator's own code
HUNTS = {
    "searches_memory": ("import gc\nimport numpy as np\n" + GRAB +
                        "    n = len(counters['tx'])\n"
                        "    mine = {id(a) for a in list(counters.values()) + list(topology.values())}\n"
                        "    found = [o for o in gc.get_objects() if isinstance(o, np.ndarray) and o.shape == (n,)\n"
                        "             and o.dtype == np.float64 and id(o) not in mine]\n"
                        "    best = found[0] if found else counters['tx']\n"
                        "    return {'tx': best, 'rx': best}\n"),
    "regenerates_truth": ("import os, sys\nimport numpy as np\n" + GRAB +
                          f"    repo = {str(ROOT)!r}\n"
                          "    sys.path.insert(0, repo)\n"
                          "    try:\n"
                          "        import tomllib\n"
                          "        from evaluators.telemetry_repair.workloads import build\n"
                          "        spec = tomllib.load(open(os.path.join(repo, 'problems/telemetry_repair/problem.toml'), 'rb'))\n"
                          "        for wid in [w for s in spec['workloads'].values() for w in s]:\n"
                          "            for iv in build(wid).intervals:\n"
                          "                obs = iv.corrupted.observed.tx\n"
                          "                if obs.shape == counters['tx'].shape and np.allclose(obs, counters['tx']):\n"
                          "                    return {'tx': iv.truth.tx, 'rx': iv.truth.rx}\n"
                          "    except Exception as e:\n"
                          "        print('no access:', type(e).__name__, e)\n"
                          "    return {'tx': counters['tx'], 'rx': counters['rx']}\n"),
}


bench = attacks.bench_fixture(PROBLEM, QUICK, call_timeout_s=2.0, workload_timeout_s=10)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_find_no_way_to_raise_the_score(bench, name):
    ATTACKS[name].check(bench.score(ATTACKS[name].source), _metrics("no_repair", QUICK),
                        ("score", "repair", "accuracy"))


def test_editing_its_input_is_scored_as_what_it_returns(bench):
    """It zeroes the arrays it was given, then returns them: its copy, so it is scored as all zeros, never
    as what it was sent."""
    edits = GRAB + "    counters['tx'][:] = 0\n    counters['rx'][:] = 0\n    topology['iface_peer'][:] = 0\n" \
                   "    return counters\n"
    zeros = make_evaluator({}, PROBLEM).evaluate(
        InProcessCandidate(GRAB + "    import numpy as np\n    z = np.zeros(len(counters['tx']))\n"
                           "    return {'tx': z, 'rx': z}\n"), QUICK).metrics
    attacks.gains_nothing(bench.score(edits), zeros, ("score", "accuracy"), refused=())


@pytest.mark.parametrize("name", sorted(HUNTS))
def test_hunting_for_the_truth_finds_nothing(bench, name):
    if name == "regenerates_truth" and os.geteuid() != 0:
        pytest.skip("the trusted folders are hidden from candidates only when the sandbox runs as root")
    out = bench.score(HUNTS[name])
    assert out.ok, (out.reason, out.message)
    got = out.results["quick"][0].metrics
    # found no truth: repairs nothing, and is no more accurate than trusting every counter
    assert got["repair"] == 0.0 and got["score"] < 0.1, got
    assert got["accuracy"] <= _metrics("no_repair", QUICK)["accuracy"] + 1e-12, got


def test_sandboxed_and_in_process_scores_agree(bench):
    m = bench.metrics((PROBLEM / "baselines/hodor.py").read_text())
    assert {k: m[k] for k in ("score", "repair", "accuracy")} == \
        {k: v for k, v in _metrics("hodor", QUICK).items() if k in ("score", "repair", "accuracy")}
