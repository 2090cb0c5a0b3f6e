"""The cant_be_late_multi problem: region moves and launch attempts by hand, the guard never betting on
an unseen region, validation of region answers, what the policy can see, the held-out ordering against
single-region Uniform Progress on the same traces, and multi-region attacks through the real sandbox."""
from __future__ import annotations

import dataclasses
import textwrap

import numpy as np
import pytest

from evaluators.base import InvalidOutput
from evaluators.cant_be_late_multi import make_evaluator
from evaluators.spot.availability import Availability
from evaluators.spot.policy_io import SandboxPolicy, parse_decision
from evaluators.spot.simulator import Decision, Job, State, guard, simulate
from evaluators.spot.workloads import Settings, parse_workload
from evaluators.spot.zones import MULTI_REGIONS
from evolve import problem
from sandbox.base import Limits
from sandbox.inprocess import InProcessSandbox
from tests import attacks
from tests.attacks import fails, no_gain
from tests.conftest import ROOT

PROBLEM = ROOT / "problems" / "cant_be_late_multi"
SINGLE_UP = ROOT / "problems" / "cant_be_late" / "baselines" / "uniform_progress.py"
ENTRIES = ("init", "decide")
JOB = Job(work_s=1800, deadline_s=3600, overhead_s=300, tick_s=600, on_demand_price=3.0)
PRICES = (1.0, 2.0)


def _avail(*rows: str) -> Availability:
    up = np.array([[c == "1" for c in r] for r in rows])
    return Availability(up, 600, tuple(f"r{i}" for i in range(len(rows))), PRICES[:len(rows)], "test")


def _script(*answers: Decision):
    it = iter(answers)
    return lambda st, has_spot: next(it)


# ---------------------------------------------------------------- moves and launches, by hand


def test_spot_in_another_region_is_a_launch_that_runs_where_capacity_exists():
    ep = simulate(JOB, _avail("000000", "111111"), _script(*[Decision("spot", 1)] * 4))
    assert list(ep.region) == [0, 1, 1, 1] and ep.finish_s == 2100
    assert ep.cost == pytest.approx(PRICES[1] * 2100 / 3600) and ep.starts == 1


def test_a_failed_launch_costs_a_tick_and_nothing_else():
    ep = simulate(JOB, _avail("000000", "011111"), _script(*[Decision("spot", 1)] * 5))
    # tick 0: no capacity in region 1, idle and unbilled; from tick 1 as above, a tick later
    assert ep.failed_launches == 1 and list(ep.applied[:2]) == [3, 1]
    assert ep.finish_s == 600 + 2100 and ep.cost == pytest.approx(PRICES[1] * 2100 / 3600)


def test_waiting_moves_for_free_and_moving_an_instance_pays_a_restart():
    calls = [Decision("wait", 1), Decision("on_demand", 1), Decision("on_demand", 0), Decision("on_demand", 0),
             Decision("on_demand", 0)]
    ep = simulate(JOB, _avail("000000", "000000"), _script(*calls))
    # tick 0: move (free); tick 1: on-demand in 1, 300 work; tick 2: moved to 0, restart, 300 (600); 1200; 1800
    assert list(ep.region) == [0, 1, 1, 0, 0] and ep.starts == 2 and ep.overhead_paid_s == 600
    assert ep.cost == pytest.approx(3.0 * 4 * 600 / 3600)


def test_the_guard_never_bets_on_a_region_the_policy_has_not_seen():
    # 1500 s of work left, 2400 s to the deadline: waiting a tick would leave 1800 s for 1500 + 300: just
    # feasible; at 2100 s left it is not. Spot in the current region (seen available) progresses, so it
    # may go on; spot elsewhere is judged as a failed launch, whatever that region really has.
    st = State(tick=2, done_s=300, running="spot", region=0)
    assert guard(JOB, st, Decision("spot", 0), True, PRICES) == Decision("spot", 0)
    late = dataclasses.replace(st, tick=3, done_s=1200)   # 600 s left to do, 1800 s to the deadline
    assert guard(JOB, late, Decision("spot", 1), True, PRICES) == Decision("spot", 1)
    later = dataclasses.replace(st, tick=4, done_s=1000)  # 800 + 300 > 1200 - 600 after a failed launch
    assert guard(JOB, later, Decision("spot", 1), True, PRICES) == Decision("on_demand", 0)
    assert guard(JOB, later, Decision("spot", 0), True, PRICES) == Decision("spot", 0)


@pytest.mark.parametrize("answer,rule", [
    ({"action": "spot", "region": 9}, "rule 'region'"),
    ({"action": "spot", "region": -1}, "rule 'region'"),
    ({"action": "spot", "region": True}, "rule 'region'"),
    ({"action": "spot", "region": "us-east-1a"}, "rule 'region'"),
    ({"action": "wait", "region": 1, "cost": 0}, "rule 'format'"),
    ({"action": "spot", "region": 2}, "rule 'spot-unavailable'"),   # its own region, seen without capacity
])
def test_broken_region_answers_are_rejected(answer, rule):
    with pytest.raises(InvalidOutput, match=rule):
        parse_decision(answer, State(tick=3, region=2), has_spot=False, regions=9, job=JOB)


def test_the_policy_sees_its_own_region_only():
    s = Settings.from_params({"tick_s": 195, "horizon_h": 60}, multi=True)
    w = parse_workload("v100x9:seed=1:deadline=52:overhead=0.2:start=4", s)
    pol = SandboxPolicy(None, w.job, w.episodes[0], multi=True)
    pol._seen[:3], pol._region[:3] = (1, 0, 1), (4, 4, 5)
    msg = pol.message(State(tick=2, region=5), has_spot=True)
    assert isinstance(msg["has_spot"], bool) and msg["region"] == 5
    assert len(msg["history"]) == len(msg["history_region"]) == 3
    arrays = {k for k, v in msg.items() if isinstance(v, np.ndarray) and v.size == len(MULTI_REGIONS)}
    assert arrays == {"spot_prices"}   # nothing per region but the (public) prices


def test_generated_regions_span_the_published_ranges():
    s = Settings.from_params({"tick_s": 195, "horizon_h": 6000}, multi=True)
    av = parse_workload("v100x9:seed=3:deadline=52:overhead=0.2", s).episodes[0]
    assert av.regions == 9 and min(av.spot_prices) == 0.94 and max(av.spot_prices) == 1.55
    frac = av.up.mean(axis=1)
    assert frac.min() == pytest.approx(0.19, abs=0.05) and frac.max() == pytest.approx(0.93, abs=0.05)


def test_a_multi_region_trace_file_is_a_workload(tmp_path):
    f = tmp_path / "three.txt"
    f.write_text("# r0 r1 r2\n" + "0 0 1\n" * 960)
    ev = make_evaluator({"tick_s": 195}, PROBLEM)
    with InProcessSandbox().start((PROBLEM / "baselines" / "uniform_progress_rr.py").read_text(), Limits(),
                                  ENTRIES) as cand:
        m = ev.evaluate(cand, f"file={f}:deadline=52:overhead=0.2:prices=1.0/1.0/1.2").metrics
    assert m["deadline_met"] == 1.0 and m["spot_h"] > 40 and m["region_moves"] >= 1
    bad = tmp_path / "bad.txt"
    bad.write_text("0 0 1\n0 1\n")
    with pytest.raises(Exception, match=r"bad.txt:2: 2 fields, expected 3"):
        ev.check_workload(f"file={bad}:deadline=52:overhead=0.2:prices=1/1/1")


# ---------------------------------------------------------------- held-out ordering


def _evaluate(source: str, workload: str) -> dict[str, float]:
    with InProcessSandbox().start(source, Limits(), ENTRIES) as cand:
        return make_evaluator(problem.load(PROBLEM).evaluator.params, PROBLEM).evaluate(cand, workload).metrics


@pytest.fixture(scope="module")
def held_out():
    spec = problem.load(PROBLEM)
    sources = {**spec.baseline_sources(), "single_up": SINGLE_UP.read_text()}
    return {w: {b: _evaluate(src, w) for b, src in sources.items()} for w in spec.workloads.held_out}


@pytest.mark.slow
def test_every_policy_meets_every_deadline_on_held_out(held_out):
    for wid, by in held_out.items():
        for b, m in by.items():
            assert m["deadline_met"] == 1.0 and m["finish_h"] <= 52.0, (wid, b)


@pytest.mark.slow
def test_round_robin_uniform_progress_beats_single_region_uniform_progress(held_out):
    """The same traces, the same start region: single-region UP never moves (its answers are plain
    strings), UP with round robin looks elsewhere when its region has no spot."""
    rr = np.array([by["uniform_progress_rr"]["cost_usd"] for by in held_out.values()])
    single = np.array([by["single_up"]["cost_usd"] for by in held_out.values()])
    assert rr.mean() < 0.9 * single.mean(), (rr.mean(), single.mean())
    assert np.mean(rr < single) >= 0.75
    assert all(by["single_up"]["region_moves"] == 0 for by in held_out.values())


# ---------------------------------------------------------------- attacks, through the real sandbox

HEADER = "def init(config):\n    pass\n\n"
QUICK = "v100x9:seed=9:deadline=52:overhead=0.2:start=6"
HOP = "    return 'spot' if state['has_spot'] else {'action': 'wait', 'region': (state['region'] + 1) % 9}\n"


SIG = HEADER + "def decide(state):\n"
ATTACKS = {
    **attacks.shared(SIG, HOP, "rule 'action'", "tick 0"),
    "returns_its_own_cost": fails(SIG + "    return {'action': 'wait', 'region': 0, 'cost_usd': 0.0}\n",
                                  "invalid_output", "rule 'format'", "tick 0"),
    # rewrites the region history, its region, the prices and the availability it was shown: its own copy
    "rewrites_the_region_history": no_gain(HEADER + textwrap.dedent("""
        import numpy as np
        def honest(state):
        """) + HOP + textwrap.dedent("""
        def decide(state):
            answer = honest(state)
            state['history_region'] = np.zeros(len(state['history_region']), np.int16)
            state['region'], state['spot_prices'], state['has_spot'] = 0, np.zeros(9), True
            return answer
        """), refused=()),
}


bench = attacks.bench_fixture(PROBLEM, QUICK, call_timeout_s=0.5, workload_timeout_s=10)


@pytest.fixture(scope="module")
def honest(bench):
    """Spot where it is, else a hop to the next region, honestly played: what no attack may beat."""
    return bench.metrics(SIG + HOP)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_are_recorded_with_a_reason_or_gain_nothing(bench, honest, name):
    ATTACKS[name].check(bench.score(ATTACKS[name].source), honest)


def test_always_waiting_in_every_region_still_finishes_at_on_demand_cost(bench):
    m = bench.metrics(SIG + "    return {'action': 'wait', 'region': (state['tick'] * 4) % 9}\n")
    assert m["deadline_met"] == 1.0 and m["score"] == pytest.approx(0.0, abs=1e-12)
