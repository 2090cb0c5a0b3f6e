"""The verifier stage (`adrs verify RUN --top K`): a tiny EPLB run's best programs and baselines make their
placements in the sandbox and the trusted side times them (on the CPU here: tiny shapes, labelled a harness
check); the measurements are stored as batches, the report and `adrs show` compare the two rankings, a
disagreement forced through fake timings is flagged, and a store of schema version 3 upgrades to hold them."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from evaluators.gpu.backend import torch_available
from evolve import problem as problem_mod
from evolve.errors import AdrsError
from evolve.run.agreement import CPU_LABEL, SIM_TIE, agreement
from evolve.store import MeasurementRow, Store, migrate, sqlite_url
from tests.conftest import ROOT, TOY, adrs
from tests.pgcluster import execute_sql

needs_torch = pytest.mark.skipif(not torch_available(), reason="PyTorch is not installed (pip install -e '.[gpu]'): "
                                 "adrs verify times placements with it, here on the CPU")

# Two windows of four layers per workload: one placement per workload, made in the sandbox and timed on the next.
TINY = {
    "train": ["ep32:skew4:seed1:win2:layers4", "ep32:skew7:seed2:win2:layers4"],
    "held_out": ["ep32:skew5:seed101:win2:layers4", "ep32:skew3:seed102:win2:layers4"],
    "quick": ["ep32:skew4:seed1:win2:layers4"],
}
VERIFY = '''
[verify]
kind = "moe_microbench"
workloads = ["ep32:skew5:seed101:win2:layers4"]
windows = 1
layers = 2
cpu_token_divisor = 256
'''
BASELINES = ("contiguous", "deepseek_hierarchical", "greedy_lpt")   # the MILP baseline is left out: seconds a call


def tiny_eplb(dst: Path, verify: str = VERIFY) -> Path:
    """problems/eplb with tiny workloads, three baselines, a deterministic score and the given [verify]."""
    shutil.copytree(ROOT / "problems" / "eplb", dst, ignore=shutil.ignore_patterns("__pycache__", "traces"))
    text = (dst / "problem.toml").read_text()
    text = text[:text.index("[workloads]")] + "[workloads]\n" + "".join(
        f"{k} = {json.dumps(v)}\n" for k, v in TINY.items()) + "\n" + text[text.index("[objective]"):]
    text = text.replace("runtime_weight = 0.1 ", "runtime_weight = 0.0 ")
    text = re.sub(r"\[baselines\]\n(.*\n)*?\n", "[baselines]\n" + "".join(
        f'{b} = "baselines/{b}.py"\n' for b in BASELINES) + "\n", text)
    text = text[:text.index("[verify]")] if "[verify]" in text else text
    (dst / "problem.toml").write_text(text + verify)
    return dst


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("verify")
    problem = tiny_eplb(base / "eplb_tiny")
    r = adrs("run", str(problem), "--iterations", "4", "--runs-dir", str(base / "runs"), "--run-id", "t")
    assert r.returncode == 0, r.stdout + r.stderr
    return base / "runs" / "t"


def _store(run_dir: Path) -> Store:
    return Store(sqlite_url(run_dir / "lineage.db"))


def test_the_verify_table_is_validated_with_unknown_key_errors(tmp_path):
    spec = problem_mod.load(tiny_eplb(tmp_path / "a"))
    assert spec.verify.kind == "moe_microbench" and spec.verify.layers == 2 and spec.verify.windows == 1
    assert problem_mod.load("eplb").verify.workloads == ("ep32:skew6:seed101",)
    for bad, match in ((VERIFY.replace("layers = 2", "layres = 2"),
                        r"verify.layres: unknown key.*did you mean 'layers'"),
                       (VERIFY.replace('"moe_microbench"', '"stopwatch"'), r"verify.kind: 'stopwatch' is not one of"),
                       (VERIFY.replace("windows = 1", "windows = 0"), r"verify.windows: must be at least 1"),
                       (VERIFY.replace("seed101:", "seedX:"), r"verify.workloads: 'ep32:skew5:seedX")):
        with pytest.raises(AdrsError, match=match):
            problem_mod.load(tiny_eplb(tmp_path / f"b{len(list(tmp_path.iterdir()))}", bad))
    # no [verify]: the spec says so, and a workload default comes from held-out when [verify] names none
    assert problem_mod.load(TOY).verify is None
    spec = problem_mod.load(tiny_eplb(tmp_path / "c", '\n[verify]\nkind = "moe_microbench"\n'))
    assert spec.verify.workloads == (TINY["held_out"][0],) and spec.verify.layers == 4


def _row(name: str, sim: float, score: float, spread: float = 0.01, **kw) -> MeasurementRow:
    return MeasurementRow(name=name, kind="child", verifier="moe_microbench", workloads=["w"], status="ok",
                          sim_score=sim, sim_basis="held-out", score=score, spread=spread, batch=1,
                          device_kind="cpu", device="Some CPU", **kw)


def test_rank_agreement_by_hand():
    # simulator order a > b > c > d; measured a > c > b > d: one swapped pair (b, c)
    rows = [_row("a", 0.9, 0.8), _row("b", 0.7, 0.5), _row("c", 0.6, 0.55), _row("d", 0.5, 0.1)]
    a = agreement(rows)
    assert [(r.name, r.sim_rank, r.measured_rank) for r in a.ranked] == [("a", 1, 1), ("b", 2, 3), ("c", 3, 2),
                                                                          ("d", 4, 4)]
    assert a.spearman == pytest.approx(1 - 6 * 2 / (4 * 15))     # sum d^2 = 2
    assert a.kendall == pytest.approx((5 - 1) / 6)                # 5 concordant, 1 discordant pair
    [d] = a.disagreements
    assert (d.better_sim.name, d.worse_sim.name, d.within_noise) == ("b", "c", False)   # 9% apart, 1% spread
    assert d.text() == "b ranks above c in the simulator (0.7 vs 0.6) but below it measured (0.5 vs 0.55)"
    assert a.device == f"{CPU_LABEL}: Some CPU" and a.is_cpu
    # simulator scores closer than SIM_TIE are a tie: the measurement reversing them is no disagreement
    assert agreement([_row("b", 0.6394, 0.5), _row("c", 0.6393, 0.55)]).disagreements == []
    # within the timings' spread, the same pair is said to be
    assert agreement([_row("b", 0.7, 0.5, 0.2), _row("c", 0.6, 0.55)]).disagreements[0].within_noise
    # two entrants: no correlation; a failed one is listed, not ranked
    two = agreement([_row("a", 0.9, 0.8), _row("b", 0.7, 0.5),
                     MeasurementRow("x", "child", "moe_microbench", ["w"], "failed", reason="invalid_output: no")])
    assert two.spearman is None and "n/a (fewer than 3" in two.summary_line()
    assert two.failed == [("x", "invalid_output: no")]


@pytest.mark.slow   # ~8 s: four CLI commands, real timings on the CPU
@needs_torch
def test_adrs_verify_measures_the_top_programs_and_the_baselines_on_the_cpu(tiny_run):
    r = adrs("verify", str(tiny_run), "--top", "2", "--device", "cpu")
    assert r.returncode == 0, r.stdout + r.stderr
    assert CPU_LABEL in r.stdout and "stored as verification 1" in r.stdout
    s = _store(tiny_run)
    rows = s.measurements("t")
    finalists = s.programs_with_split("t", "held-out")
    lineage = [m for m in rows if m.kind != "baseline"]
    # the top 2 by held-out score among the programs the final stage scored on held-out, then every baseline
    assert 1 <= len(lineage) <= 2 and all(m.program_id in finalists for m in lineage)
    assert [m.name for m in rows if m.kind == "baseline"] == [f"baseline {b}" for b in BASELINES]
    sims = [m.sim_score for m in lineage]
    assert sims == sorted(sims, reverse=True)
    for m in rows:
        assert m.status == "ok" and m.batch == 1 and m.sim_basis == "held-out" and m.verifier == "moe_microbench"
        assert m.device_kind == "cpu" and m.device and 0 < m.score <= 1 and m.median_s > 0 and m.repeats >= 5 * 2 * 33
        assert m.workloads == ["ep32:skew5:seed101:win2:layers4"] and m.program_id is not None
        assert len(m.detail["placements"]) == 1 and len(m.detail["placements"][0]["layers"]) == 2
        assert "score" in m.detail["simulator"]   # the simulator's figures on the same workload, kept beside
    contiguous = next(m for m in rows if m.name == "baseline contiguous")
    # contiguous leaves the hot experts together: its busiest simulated GPU runs far more tokens, measured too
    assert contiguous.score == min(m.score for m in rows)

    shown = adrs("show", str(tiny_run))
    assert shown.returncode == 0 and re.search(r"verification 1 \(moe_microbench, cpu \(harness check.*Spearman "
                                               r"-?\d\.\d\d, Kendall", shown.stdout), shown.stdout
    rep = adrs("report", str(tiny_run))
    assert rep.returncode == 0, rep.stderr
    html = (tiny_run / "report" / "index.html").read_text()
    assert 'id="verification"' in html and f"Device: {CPU_LABEL}" in html and "Spearman" in html
    assert html.count("baseline greedy_lpt") >= 2 and 'data-figure="verification"' in html


class _Tagged:
    """A timed callable the fake timer recognises: which entrant and which key it stands for."""

    def __init__(self, fn, placement: str, key: str) -> None:
        self.fn, self.placement, self.key = fn, placement, key

    def __call__(self):
        return None   # fake timings: nothing runs


def _fake_bench(times: dict[str, float], slow_reference_from: str):
    """A Bench whose timer returns `times[entrant]` for every simulated GPU, 1 ms for the ideal, and a reference
    GEMM that slows by half once `slow_reference_from` has been measured (clock drift, faked)."""
    from evaluators.gpu.bench import Bench, REFERENCE_POLICY
    from evaluators.gpu.device_info import DeviceProbe
    from evaluators.gpu.timing import RepeatPolicy
    state = {"slow": False}

    def timer(fn) -> float:
        if fn.key == "reference":
            return 1.5e-3 if state["slow"] else 1e-3
        entrant = fn.placement.rsplit(" ", 2)[0]   # "<entrant> <workload> w<window>"
        state["slow"] = state["slow"] or entrant == slow_reference_from
        return 1e-3 if fn.key == "ideal" else times[entrant]

    class FakeBench(Bench):
        def measure(self, name, fns, policy=None, **meta):
            return super().measure(name, {k: _Tagged(f, meta["placement"], k) for k, f in fns.items()}, policy, **meta)

    return FakeBench(timer, RepeatPolicy(warmup=0, min_repeats=3, max_repeats=3, target_spread=0.5),
                     reference=_Tagged(None, "", "reference"), reference_policy=REFERENCE_POLICY,
                     drift_tolerance=0.05, probe=DeviceProbe(None))


@needs_torch
def test_a_measurement_that_reverses_the_simulator_is_flagged_and_a_second_verify_appends(tiny_run):
    from evaluators.gpu.backend import open_backend
    from evolve.config import RunConfig
    from evolve.run import session
    from evolve.run.verify import entrants, verify_run
    h = session.open_run(str(tiny_run))
    found = entrants(h.store, h.run_id, h.spec, 2)
    ranked = sorted((e for e in found if e.sim_score is not None), key=lambda e: -e.sim_score)
    # the simulator's best gets the slowest layer, its worst the fastest: every pair it orders disagrees (equal
    # simulator scores, e.g. the initial program and the DeepSeek baseline it copies, get equal timings)
    levels = sorted({e.sim_score for e in ranked}, reverse=True)
    times = {e.name: 1e-3 * (2 + len(levels) - levels.index(e.sim_score)) for e in ranked}
    bench = _fake_bench(times, slow_reference_from=found[1].name)   # entrants are measured in `found` order
    sb = session.make_sandbox(RunConfig(sandbox="local", eval_slots=1), h.spec)
    try:
        before = len(h.store.measurements("t"))
        out = verify_run(h.store, h.run_id, h.spec, sb, 2, bench=bench, backend=open_backend("cpu", flush_bytes=1024))
    finally:
        sb.close()
    a = out.agreement
    after = h.store.measurements("t")
    assert out.batch == 1 + max((m.batch for m in after[:before]), default=0)   # appended: a new batch
    assert len(after) == before + len(found) and after[:before] == h.store.measurements("t")[:before]
    assert a.spearman == pytest.approx(-1) and a.kendall == pytest.approx(-1)
    n = len(levels)
    ordered = sum(abs(x.sim_score - y.sim_score) >= SIM_TIE for i, x in enumerate(ranked) for y in ranked[i + 1:])
    assert len(a.disagreements) == ordered >= 3 and not any(d.within_noise for d in a.disagreements)
    top, worst = ranked[0], ranked[-1]
    d = next(d for d in a.disagreements if d.better_sim.name == top.name and d.worse_sim.name == worst.name)
    assert d.better_sim.score == pytest.approx(1 / (2 + n)) and d.worse_sim.score == pytest.approx(1 / 3)
    assert f"{top.name} ranks above {worst.name} in the simulator ({top.sim_score:.4g} vs {worst.sim_score:.4g}) " \
           f"but below it measured ({1 / (2 + n):.4g} vs {1 / 3:.4g})" == d.text()
    rows = {m.name: m for m in out.rows}
    assert not rows[found[0].name].drift_flagged      # measured before the reference slowed
    assert rows[found[1].name].drift_flagged and "reference GEMM slowed by 50.0%" in rows[found[1].name].drift
    # the report shows the latest batch and keeps the earlier ones listed
    from evolve.report.data import gather
    from evolve.report.site import write_report
    html = write_report(gather(h.store, h.run_id), tiny_run / "report2").read_text()
    assert "Ordered differently" in html and "Spearman -1.00" in html and "reference GEMM slowed" in html
    h.store.close()


def test_a_problem_without_a_verifier_gets_a_clear_message(tmp_path):
    r = adrs("run", str(TOY), "--iterations", "1", "--runs-dir", str(tmp_path), "--run-id", "toy")
    assert r.returncode == 0, r.stderr
    r = adrs("verify", str(tmp_path / "toy"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "problem 'toy' declares no real verifier ([verify] in" in r.stderr and "problems with one: eplb" in r.stderr


V3_RUN = [
    "insert into runs values ('old', 'eplb', '/x', 0, '{}', 'local', '{}', '{}', 1.0)",
    "insert into programs (run_id, iteration, kind, name, island, generation, source, diff, status, reason, "
    "score, origin, created_at) values ('old', 0, 'initial', '', 0, 0, 'x = 0', '', 'ok', '', 0.5, '', 1.0)",
]


def test_a_version_3_store_upgrades_to_hold_measurements(db_url):
    migrate.build(db_url, 3)
    execute_sql(db_url, V3_RUN)
    with pytest.raises(AdrsError, match="schema version 3; this adrs reads version 4.*adrs db upgrade"):
        Store(db_url)
    up = migrate.upgrade(db_url)
    assert (up.before, up.after) == (3, 4) and migrate.differences(db_url) == []
    s = Store(db_url)
    pid = s.programs("old")[0].id
    row = _row("initial", 0.5, 0.7, program_id=pid, drift_flagged=True, drift="reference GEMM slowed",
               temperature_c=61.0, detail={"placements": []})
    assert s.add_measurements("old", [row]) == 1 and s.add_measurements("old", [row]) == 2   # appended as batches
    back = s.measurements("old", batch=2)
    assert len(back) == 1 and back[0].program_id == pid and back[0].drift_flagged is True
    assert back[0].detail == {"placements": []} and back[0].workloads == ["w"] and back[0].temperature_c == 61.0
    assert len(s.measurements("old")) == 2
    s.close()


def test_a_candidate_that_reports_its_own_timing_is_refused_before_anything_is_timed(tmp_path):
    """The decisions come through the evaluator's validation in the real sandbox: an answer that is a claimed
    result instead of a placement fails the program, and no answer of it reaches the timing."""
    from evolve.config import RunConfig
    from evolve.run import session
    from evolve.run.decisions import obtain
    spec = problem_mod.load(tiny_eplb(tmp_path / "eplb_tiny"))
    liar = "def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):\n" \
           "    return {'score': 1.0, 'layer_time_us': 0.0}\n"
    sb = session.make_sandbox(RunConfig(sandbox="local", eval_slots=1), spec)
    try:
        honest = obtain(spec, sb, spec.initial_source(), spec.verify.workloads)
        lying = obtain(spec, sb, liar, spec.verify.workloads)
    finally:
        sb.close()
    [(fn, (phy2log, logcnt))] = honest.answers[spec.verify.workloads[0]]   # two windows: one placement
    assert honest.ok and fn == "rebalance_experts" and len(phy2log) == 4 and len(logcnt) == 4
    assert not lying.ok and lying.scorecard.reason == "invalid_output" and lying.answers == {}
    assert "window 0" in lying.scorecard.message
