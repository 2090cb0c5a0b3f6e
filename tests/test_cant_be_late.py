"""The cant_be_late problem: the tick simulator against hand-computed cases, the deadline guard, the
availability generator and trace files, validation, the held-out ordering of the paper's baselines, and
the attack set through the real local sandbox."""
from __future__ import annotations

import dataclasses
import os
import textwrap

import numpy as np
import pytest

from evaluators.base import ConfigError, InvalidOutput
from evaluators.cant_be_late import make_evaluator
from evaluators.spot.availability import Availability, generate, load, zone_trace
from evaluators.spot.policy_io import parse_decision
from evaluators.spot.simulator import Decision, Job, State, simulate
from evaluators.spot.zones import SINGLE_ZONES
from evolve import problem
from sandbox.base import Limits
from sandbox.inprocess import InProcessSandbox
from sandbox.local import LocalSandbox
from tests import attacks
from tests.attacks import fails
from tests.conftest import ROOT

PROBLEM = ROOT / "problems" / "cant_be_late"
ENTRIES = ("init", "decide")
SPOT_P, OD_P = 1.0, 3.0

# a small job: 3 ticks of work, a 5-minute restart overhead, a 6-tick deadline
JOB = Job(work_s=1800, deadline_s=3600, overhead_s=300, tick_s=600, on_demand_price=OD_P)


def _avail(*rows: str) -> Availability:
    up = np.array([[c == "1" for c in r] for r in rows])
    return Availability(up, 600, tuple(f"r{i}" for i in range(len(rows))), (SPOT_P,) * len(rows), "test")


def _greedy(st: State, has_spot: bool) -> Decision:
    return Decision("spot" if has_spot else "wait", st.region)


# ---------------------------------------------------------------- the simulator, by hand


def test_all_spot_pays_one_overhead_and_bills_the_last_tick_in_part():
    ep = simulate(JOB, _avail("111111"), _greedy)
    # tick 0: 300 s overhead + 300 s work; ticks 1-2: 600 s each (1500); tick 3: the last 300 s
    assert ep.finish_s == 3 * 600 + 300
    assert ep.cost == pytest.approx(SPOT_P * 2100 / 3600)
    assert (ep.starts, ep.preemptions, ep.overhead_paid_s) == (1, 0, 300)
    assert not ep.forced.any()


def test_a_preemption_loses_the_instance_not_the_progress():
    ep = simulate(JOB, _avail("101111"), _greedy)
    # tick 0: 300 work; tick 1: preempted, wait; tick 2: restart, 300 work (600); ticks 3-4: 1200, 1800
    assert ep.finish_s == 4 * 600 + 600
    assert ep.cost == pytest.approx(SPOT_P * 4 * 600 / 3600)
    assert (ep.starts, ep.preemptions, ep.overhead_paid_s) == (2, 1, 600)
    assert list(ep.applied) == [1, 0, 1, 1, 1]


def test_the_guard_finishes_an_always_waiting_job_on_time_at_on_demand_cost():
    ep = simulate(JOB, _avail("000000"), lambda st, s: Decision("wait", st.region))
    # waiting is safe while work + overhead (2100 s) fit after the tick: ticks 0 and 1; from tick 2 on-demand
    assert list(ep.forced) == [False, False, True, True, True, True]
    assert ep.finish_s == 3300 <= JOB.deadline_s
    assert ep.cost == pytest.approx(JOB.on_demand_cost) == pytest.approx(OD_P * 2100 / 3600)


def test_the_guard_lets_spot_run_while_a_preemption_could_still_be_absorbed():
    # spot up throughout but a policy that insists on spot: the guard must never step in (spot progress
    # keeps the worst case feasible), and on-demand is never billed
    ep = simulate(JOB, _avail("111111"), lambda st, s: Decision("spot", 0))
    assert not ep.forced.any() and ep.billed_s["on_demand"] == 0


def test_a_restart_overhead_longer_than_a_tick_spans_ticks():
    job = dataclasses.replace(JOB, overhead_s=900, deadline_s=4800)
    ep = simulate(job, _avail("00000000"), lambda st, s: Decision("on_demand", 0))
    # tick 0: 600 s overhead; tick 1: 300 s overhead + 300 s work; then 600, 600, 300
    assert ep.finish_s == 4 * 600 + 300
    assert ep.overhead_paid_s == 900 and ep.starts == 1
    assert ep.cost == pytest.approx(OD_P * 2700 / 3600) == pytest.approx(job.on_demand_cost)


def test_switching_type_pays_the_overhead_again():
    calls = iter(["on_demand", "spot", "spot", "spot", "spot", "spot"])
    ep = simulate(JOB, _avail("111111"), lambda st, s: Decision(next(calls), 0))
    # tick 0 on-demand: 300 work; tick 1 spot: new start, 300 work (600); ticks 2-3: 1200, 1800
    assert ep.starts == 2 and ep.overhead_paid_s == 600
    assert ep.cost == pytest.approx(OD_P * 600 / 3600 + SPOT_P * 1800 / 3600)


def test_an_infeasible_job_is_a_config_error():
    with pytest.raises(ConfigError, match="infeasible job"):
        Job(work_s=3600, deadline_s=3600, overhead_s=60, tick_s=600, on_demand_price=OD_P)


def test_every_random_policy_meets_the_deadline():
    """Whatever a policy answers, the guard finishes the job by the deadline (random answers, many traces)."""
    rng = np.random.default_rng(0)
    job = Job(work_s=48 * 3600, deadline_s=52 * 3600, overhead_s=720, tick_s=600, on_demand_price=3.06)
    for k in range(20):
        av = generate((SINGLE_ZONES["us-west-2b_v100"],), job.max_ticks, 600, (k,))
        policy = lambda st, s: Decision(str(rng.choice(["spot", "wait", "on_demand"] if s else ["wait", "on_demand"])), 0)
        ep = simulate(job, av, policy)
        assert ep.finish_s <= job.deadline_s


# ---------------------------------------------------------------- availability


@pytest.mark.parametrize("name", sorted(SINGLE_ZONES))
def test_generated_zones_match_the_published_availability_and_period_lengths(name):
    z = SINGLE_ZONES[name]
    up = zone_trace(z, 400_000, 60, np.random.default_rng(1))  # ~6,700 h sampled each minute
    assert up.mean() == pytest.approx(z.availability, abs=0.03)
    edges = np.flatnonzero(np.diff(up.astype(np.int8))) + 1
    runs = np.diff(edges) / 60.0   # period lengths in hours (whole periods only)
    states = up[edges[:-1]]
    assert runs[states].mean() == pytest.approx(z.mean_up_h, rel=0.2)
    assert runs[~states].mean() == pytest.approx(z.mean_down_h, rel=0.2)


def test_generation_is_deterministic_per_seed():
    zs = (SINGLE_ZONES["us-west-2a_v100"],)
    a, b, c = (generate(zs, 500, 600, (s,)).up for s in (3, 3, 4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_trace_files_load_and_name_file_line_and_field(tmp_path):
    f = tmp_path / "zone.txt"
    f.write_text("# a header\n1\n1\n\n0\n1\n")
    av = load(f, 600, (0.5,), regions=1)
    assert av.up.tolist() == [[True, True, False, True]] and av.spot_prices == (0.5,)
    f.write_text("1\n1\n2\n")
    with pytest.raises(ConfigError, match=r"zone.txt:3: field 1: expected 0 or 1, got '2'"):
        load(f, 600, (0.5,), regions=1)
    f.write_text("1\n1 0\n")
    with pytest.raises(ConfigError, match=r"zone.txt:2: 2 fields, expected 1"):
        load(f, 600, (0.5,), regions=1)
    f.write_text("# nothing\n")
    with pytest.raises(ConfigError, match="no ticks"):
        load(f, 600, (0.5,), regions=1)


def test_a_trace_file_is_a_workload_and_must_cover_the_deadline(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("1\n" * 312)     # 52 h of 600 s ticks, all available
    ev = make_evaluator({}, PROBLEM)
    with InProcessSandbox().start(_source("greedy"), Limits(), ENTRIES) as cand:
        m = ev.evaluate(cand, f"file={f}:deadline=52:overhead=0.2").metrics
    # one start: 0.2 h overhead + 48 h on spot at $0.9731/h
    assert m["cost_usd"] == pytest.approx(0.9731 * 48.2)
    assert m["score"] == pytest.approx(1 - 0.9731 / 3.06)
    short = tmp_path / "short.txt"   # another name: a workload is read once per process
    short.write_text("1\n" * 300)
    with pytest.raises(ConfigError, match=r"short.txt has 300 ticks.*needs 312"):
        ev.check_workload(f"file={short}:deadline=52:overhead=0.2")


@pytest.mark.parametrize("wid,match", [
    ("us-east-9z:seed=1:deadline=52:overhead=0.2", "unknown zone"),
    ("us-west-2a_k80:seed=1:deadline=52", "missing overhead"),
    ("us-west-2a_k80:seed=1:deadline=48:overhead=0.2", "infeasible job"),
    ("us-west-2a_k80:seed=1:deadline=52:overhead=0.2:start=3", "unknown key"),
    ("us-west-2a_k80:seed=x:deadline=52:overhead=0.2", "seed must be an integer"),
])
def test_bad_workload_ids_are_config_errors(wid, match):
    with pytest.raises(ConfigError, match=match):
        make_evaluator({}, PROBLEM).check_workload(wid)


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("answer,rule", [
    ("run", "rule 'action'"),
    (3, "rule 'action'"),
    (None, "rule 'action'"),
    ({"action": "spot", "cost": 0.0}, "rule 'format'"),
    ({"action": "wait", "region": 0}, "rule 'format'"),   # single region: no region key
    ({"decision": "spot"}, "rule 'format'"),
    ("spot", "rule 'spot-unavailable'"),
])
def test_broken_answers_are_rejected_naming_the_tick_and_rule(answer, rule):
    with pytest.raises(InvalidOutput, match=rule) as e:
        parse_decision(answer, State(tick=7), has_spot=False, regions=1, job=JOB)
    assert "tick 7" in str(e.value)


def test_valid_answers_parse():
    assert parse_decision("wait", State(), False, 1, JOB) == Decision("wait", 0)
    assert parse_decision({"action": "spot"}, State(), True, 1, JOB) == Decision("spot", 0)


# ---------------------------------------------------------------- the problem end to end


def _source(name: str) -> str:
    return (PROBLEM / "baselines" / f"{name}.py").read_text() if name != "initial" else (PROBLEM / "initial.py").read_text()


def _evaluate(name: str, workload: str, box=None) -> dict[str, float]:
    with (box or InProcessSandbox()).start(_source(name), Limits(), ENTRIES) as cand:
        return make_evaluator({}, PROBLEM).evaluate(cand, workload).metrics


def test_local_sandbox_and_in_process_agree_and_runs_are_deterministic():
    wid = "us-west-2b_v100:seed=77:deadline=70:overhead=0.2:traces=2"
    box = LocalSandbox()
    try:
        a = _evaluate("uniform_progress", wid, box)
    finally:
        box.close()
    b, c = _evaluate("uniform_progress", wid), _evaluate("uniform_progress", wid)
    assert a == b == c
    assert -1 <= a["score"] <= 1 - 0.9731 / 3.06 + 1e-12


BASELINES = ("greedy", "uniform_progress", "initial")


@pytest.fixture(scope="module")
def held_out():
    spec = problem.load(PROBLEM)
    return {w: {b: _evaluate(b, w) for b in BASELINES} for w in spec.workloads.held_out}


@pytest.mark.slow
def test_every_baseline_meets_every_deadline_on_held_out(held_out):
    for wid, by in held_out.items():
        for b, m in by.items():
            assert m["deadline_met"] == 1.0, (wid, b)
            assert m["finish_h"] <= float(wid.split("deadline=")[1].split(":")[0]), (wid, b)


@pytest.mark.slow
def test_uniform_progress_is_cheaper_than_greedy_on_average_on_held_out(held_out):
    cost = {b: np.mean([by[b]["cost_usd"] for by in held_out.values()]) for b in BASELINES}
    assert cost["uniform_progress"] < 0.97 * cost["greedy"], cost
    # where UP wins: tight deadlines, where greedy burns its slack waiting early and ends on on-demand
    tight = [by for w, by in held_out.items() if "deadline=52" in w]
    assert np.mean([by["uniform_progress"]["on_demand_h"] for by in tight]) < \
        np.mean([by["greedy"]["on_demand_h"] for by in tight])


# ---------------------------------------------------------------- the attack set, through the real sandbox

HEADER = "def init(config):\n    pass\n\n"
GREEDY = "    return 'spot' if state['has_spot'] else 'wait'\n"
QUICK = "us-west-2a_v100:seed=7:deadline=52:overhead=0.2"

SIG = HEADER + "def decide(state):\n"
ATTACKS = {
    **attacks.shared(SIG, GREEDY, "rule 'action'", "tick "),
    "wrong_keys": fails(SIG + "    return {'spot': True}\n", "invalid_output", "rule 'format'", "tick "),
    "returns_a_file": fails(SIG + "    return open('/etc/passwd').read()[:20]\n",
                            "invalid_output", "rule 'action'", "tick "),
    "returns_its_own_cost": fails(SIG + "    return {'action': 'spot' if state['has_spot'] else 'wait', 'cost': 0.0, "
                                  "'score': 1.0}\n", "invalid_output", "rule 'format'", "tick "),
    "rewrites_has_spot": fails(HEADER + textwrap.dedent("""
        def decide(state):
            state['has_spot'] = True          # its own copy: the simulator still knows there is none
            return 'spot'
        """), "invalid_output", "rule 'spot-unavailable'", "tick "),
}


bench = attacks.bench_fixture(PROBLEM, QUICK, call_timeout_s=0.5, workload_timeout_s=10)


def _greedy_score(bench, wid: str = QUICK) -> float:
    return bench.metrics(SIG + GREEDY, wid)["score"]


@pytest.fixture(scope="module")
def greedy(bench):
    """Greedy, honestly played: what every no-gain attack must not beat."""
    return _greedy_score(bench)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_are_recorded_with_a_reason_or_gain_nothing(bench, greedy, name):
    ATTACKS[name].check(bench.score(ATTACKS[name].source), {"score": greedy})


def test_always_waiting_finishes_on_time_at_on_demand_cost(bench):
    out = bench.score(HEADER + "def decide(state):\n    return 'wait'\n")
    m = out.results["quick"][0].metrics
    assert out.ok and m["deadline_met"] == 1.0
    assert m["score"] == pytest.approx(0.0, abs=1e-12) and m["forced_h"] > 40 and m["spot_h"] == 0


def test_mutating_the_state_changes_nothing(bench, greedy):
    """It writes into everything it is given and keeps old states to edit later; the simulator's history,
    progress and clock are its own, so the run is exactly greedy's."""
    source = HEADER + textwrap.dedent("""
        import numpy as np
        KEPT = []
        def decide(state):
            KEPT.append(state)
            h = state['history']
            try:
                h[:] = 1                                   # read-only: refused
            except ValueError:
                pass
            for old in KEPT:                               # rewrite the past it was shown
                old['history'] = np.ones(len(old['history']), np.int8)
                old['done_h'] = old['work_h']
                old['time_left_h'] = 1e9
            has_spot = state['has_spot']
            state['done_h'], state['remaining_h'], state['cost_so_far'] = 48.0, 0.0, 0.0
            return 'spot' if has_spot else 'wait'
        """)
    attacks.gains_nothing(bench.score(source), {"score": greedy}, refused=())


def test_nothing_it_is_given_or_can_find_in_its_process_holds_the_future(bench, greedy):
    """It searches its state and every object in its own process for availability beyond the current
    tick (a longer array, a trace object) and would play on it; it finds nothing, so it scores as greedy."""
    source = HEADER + textwrap.dedent("""
        import gc, sys
        import numpy as np
        def _future(state):
            t = state['tick']
            if len(state['history']) != t + 1:
                return state['history']
            for o in gc.get_objects():
                if isinstance(o, np.ndarray) and o.ndim >= 1 and o.size > t + 1 and o.dtype in (np.bool_, np.int8):
                    return o
                if hasattr(o, 'up') and hasattr(o, 'spot_prices'):
                    return o
            return None
        def decide(state):
            found = _future(state)
            if found is not None:
                raise RuntimeError('found the future: ' + type(found).__name__)
            if any(m.startswith('evaluators.spot') for m in sys.modules):
                raise RuntimeError('the simulator is loaded in the candidate process')
        """) + GREEDY
    attacks.gains_nothing(bench.score(source), {"score": greedy}, refused=())


@pytest.mark.skipif(os.geteuid() != 0, reason="candidates run under their own uid only when the sandbox runs as root")
def test_a_trace_file_it_knows_the_path_of_cannot_be_read(bench, tmp_path):
    """A file workload whose trace the candidate knows the path of: were it readable, the candidate would
    wait out every outage shorter than the slack (it knows when spot returns) and beat greedy. The trusted
    side reads the file; the candidate's uid cannot, so it plays greedy and scores as greedy."""
    rng = np.random.default_rng(5)
    f = tmp_path / "secret.txt"
    f.write_text("".join(f"{int(x)}\n" for x in zone_trace(SINGLE_ZONES["us-west-2b_v100"], 312, 600, rng)))
    os.chmod(tmp_path, 0o700)
    os.chmod(f, 0o600)
    wid = f"file={f}:deadline=52:overhead=0.2"
    source = HEADER + textwrap.dedent(f"""
        FUTURE = []
        def decide(state):
            if not FUTURE:
                try:
                    FUTURE.append([int(x) for x in open({str(f)!r}).read().split()])
                except OSError as e:
                    FUTURE.append(None)
                    print('cannot read the trace:', type(e).__name__)
            future = FUTURE[0]
            if future is not None:   # omniscient: run on-demand through outages, never idle
                return 'spot' if state['has_spot'] else 'on_demand'
        """) + GREEDY
    out = bench.score(source, wid)
    assert out.ok, out.message
    stdout = out.artifacts.get("stdout", "")  # hidden (the sandbox's private /tmp) or refused (its uid)
    assert "cannot read the trace: FileNotFoundError" in stdout or "cannot read the trace: PermissionError" in stdout
    assert out.results["quick"][0].metrics["score"] == _greedy_score(bench, wid)
