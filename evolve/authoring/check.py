"""`adrs check-problem`: what an author gets wrong, found before a run wastes an hour on it.

Checks in order, each a Finding (ok, warn or fail); a failure that makes the later checks meaningless stops
there. The programs run exactly as the loop runs them (ProgramScorer, a fresh local-sandbox candidate per
workload), on the quick workloads only, so a check takes about as long as a few cascade checks.
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from evaluators.base import DECISION_METRIC
from evolve import problem as pm
from evolve.errors import AdrsError
from evolve.run.scoring import ProgramScorer, Scorecard

QUICK = "quick"
TIE = 1e-9  # scores closer than this are a tie


@dataclass(frozen=True)
class Finding:
    level: str    # "ok" | "warn" | "fail"
    check: str    # what was checked, one or two words
    message: str


@dataclass
class CheckReport:
    problem: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "fail"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warn"]


class _Stop(Exception):
    """A failure after which the remaining checks would only repeat it."""


class _Checker:
    def __init__(self, path: str, make_sandbox: Callable, on_finding: Callable[[Finding], None] | None) -> None:
        self.report = CheckReport(path)
        self.path = path
        self.make_sandbox = make_sandbox
        self.on_finding = on_finding

    def add(self, level: str, check: str, message: str) -> None:
        f = Finding(level, check, message)
        self.report.findings.append(f)
        if self.on_finding:
            self.on_finding(f)

    def stop(self, check: str, message: str) -> None:
        self.add("fail", check, message)
        raise _Stop

    def run(self) -> CheckReport:
        try:
            spec = self.spec()
            evaluator = self.evaluator(spec)
            self.splits(spec)
            self.programs(spec, evaluator)
        except _Stop:
            pass
        return self.report

    def spec(self) -> pm.ProblemSpec:
        try:  # the schema, the files, and the entry functions defined (by parsing) in initial and baselines
            spec = pm.load(self.path, check_evaluator=False)
        except AdrsError as e:
            self.stop("spec", str(e))
        wl = spec.workloads
        self.add("ok", "spec", f"{spec.name} ({spec.family}): {len(wl.train)} train, {len(wl.held_out)} held-out, "
                               f"{len(wl.quick)} quick workload(s)")
        fns = ", ".join(f"{n}()" for n in spec.entry.names)
        self.add("ok", "entry", f"{spec.entry.file} and {len(spec.baselines)} baseline(s) define {fns}")
        prompt = spec.directory / spec.prompt
        if not prompt.is_file() or not prompt.read_text().strip():
            self.add("warn", "prompt", f"{prompt}: missing or empty, so the LLM sees only the one-line description; "
                                       "write what the candidate sees and returns, the rules and the score")
        if spec.sandboxed_evaluator:
            self.add("warn", "trust", "trust = \"sandboxed-evaluator\": the evaluator runs inside the sandbox next to "
                                      "the candidate; its scores are only as honest as that evaluator")
        return spec

    def evaluator(self, spec: pm.ProblemSpec):
        from evaluators.base import ConfigError
        try:
            ev = spec.make_evaluator()
        except Exception as e:  # noqa: BLE001 - whatever the author's module raises is the finding
            self.stop("evaluator", f"cannot import or build {spec.evaluator.module or spec.evaluator.file}: "
                                   f"{type(e).__name__}: {e}")
        bad = []
        for split, ids in (("train", spec.workloads.train), ("held_out", spec.workloads.held_out),
                           ("quick", spec.workloads.quick)):
            for wid in ids:
                try:
                    ev.check_workload(wid)
                except ConfigError as e:
                    bad.append(f"workloads.{split} '{wid}': {e}")
                except Exception as e:  # noqa: BLE001
                    bad.append(f"workloads.{split} '{wid}': check_workload raised {type(e).__name__}: {e}")
        if bad:
            self.stop("workloads", "; ".join(bad))
        noisy = ", ".join(ev.noisy_metrics) or "none"
        self.add("ok", "evaluator", f"{type(ev).__name__} builds and accepts every workload id (noisy metrics: {noisy})")
        if spec.objective.score in ev.noisy_metrics:
            self.add("warn", "noisy", f"the score '{spec.objective.score}' is marked noisy: selection will chase "
                                      "timing noise; score a deterministic quantity and report time as a metric")
        return ev

    def splits(self, spec: pm.ProblemSpec) -> None:
        wl = spec.workloads
        train, held = _normalised(wl.train), _normalised(wl.held_out)
        same = sorted({train[k] + " = " + held[k] for k in set(train) & set(held)})
        if same:
            self.add("fail", "splits", f"train and held-out name the same workload: {', '.join(same)}")
        leaked = sorted(set(_normalised(wl.quick)) & set(held))
        if leaked:
            self.add("fail", "splits", "quick workloads steer the search but are also held out: "
                                       f"{', '.join(held[k] for k in leaked)}")
        if not same and not leaked:
            self.add("ok", "splits", "train and held-out are disjoint; quick is outside held-out")

    def programs(self, spec: pm.ProblemSpec, ev) -> None:
        sandbox = self.make_sandbox(spec)
        try:
            scorer = ProgramScorer(spec, sandbox)
            first = self.score(scorer, "initial", spec.initial_source(), spec, quiet=True)  # warms up the sandbox
            again = self.score(scorer, "initial", spec.initial_source(), spec) if first else None
            self.determinism(first, again, spec, ev)
            baselines = {n: self.score(scorer, f"baseline {n}", src, spec)
                         for n, src in spec.baseline_sources().items()}
        finally:
            sandbox.close()
        self.metrics([first, *baselines.values()], spec)
        self.learnable(first, baselines, spec)

    def score(self, scorer: ProgramScorer, label: str, source: str, spec: pm.ProblemSpec,
              quiet: bool = False) -> Scorecard | None:
        """Score on the quick workloads; a finding with the score and the time per workload unless `quiet`."""
        t0 = time.perf_counter()
        out = scorer.score(source, [(QUICK, spec.workloads.quick)])
        wall = time.perf_counter() - t0
        if not out.ok:
            self.add("fail", label, f"{out.reason}: {out.message}")
            return None
        s = out.mean(QUICK, spec.objective.score)
        per = wall / max(1, len(spec.workloads.quick))
        if quiet:
            return out
        self.add("ok", label, f"{spec.objective.score} {s:.6g} on quick; {_seconds(per)} per workload "
                              f"(a train evaluation, {len(spec.workloads.train)} workloads: about "
                              f"{_seconds(per * len(spec.workloads.train))})")
        bad = [f"{w}: {v!r}" for w, v in out.workload_scores(QUICK, spec.objective.score).items()
               if not (math.isfinite(v) and 0.0 <= v <= 1.0)]
        if bad:
            self.add("fail", "bounded", f"{label}: the score must be finite and in [0, 1] (higher is better), "
                                        f"got {', '.join(bad)}")
        return out

    def determinism(self, a: Scorecard | None, b: Scorecard | None, spec: pm.ProblemSpec, ev) -> None:
        if a is None or b is None:
            return
        skip = set(ev.noisy_metrics) | {DECISION_METRIC}
        diffs = []
        for ra, rb in zip(a.results[QUICK], b.results[QUICK]):
            for m in sorted((set(ra.metrics) | set(rb.metrics)) - skip):
                va, vb = ra.metrics.get(m), rb.metrics.get(m)
                if va != vb:
                    diffs.append(f"{m} on {ra.workload}: {va!r} then {vb!r}")
        if diffs:
            self.add("fail", "determinism", "evaluating initial twice gave different metrics: " + "; ".join(diffs[:5])
                     + " (seed every random choice from the workload id; list timing metrics in noisy_metrics)")
        else:
            self.add("ok", "determinism", "evaluating initial twice gives the same metrics"
                     + (f" (noisy, not compared: {', '.join(sorted(skip))})" if skip else ""))

    def metrics(self, cards: list[Scorecard | None], spec: pm.ProblemSpec) -> None:
        got = {m for c in cards if c for r in c.results[QUICK] for m in r.metrics}
        if not got:
            return
        declared = set(spec.objective.metrics)
        missing = sorted(declared - got)
        if missing:
            self.add("warn", "metrics", f"objective.metrics declares {', '.join(missing)}, which the evaluator "
                                        "never returned on the quick workloads")
        undeclared = sorted(got - declared - {DECISION_METRIC})
        if undeclared:
            self.add("warn", "metrics", f"returned but not in objective.metrics (no direction, not shown): "
                                        f"{', '.join(undeclared)}")
        if not any(r.feedback for c in cards if c for r in c.results[QUICK]):
            self.add("warn", "feedback", "the evaluator writes no feedback; a sentence on what went wrong in a "
                                         "workload helps the LLM more than a number")

    def learnable(self, initial: Scorecard | None, baselines: dict[str, Scorecard | None],
                  spec: pm.ProblemSpec) -> None:
        key = spec.objective.score
        scores = {n: c.mean(QUICK, key) for n, c in baselines.items() if c is not None}
        if not baselines:
            self.add("warn", "baselines", "no baselines: nothing to compare the evolved program with")
            return
        if initial is None or len(scores) < len(baselines):
            return
        mine = initial.mean(QUICK, key)
        if all(mine >= s - TIE for s in scores.values()):
            self.add("warn", "baselines", f"initial ({mine:.6g}) already matches or beats every baseline "
                                          f"({_listing(scores)}) on quick: is the initial program too strong, "
                                          "or the baselines too weak?")
        if len(scores) > 1 and max(scores.values()) - min(scores.values()) <= TIE:
            self.add("warn", "baselines", f"all baselines tie ({_listing(scores)}): the workloads do not tell the "
                                          "algorithms apart, so there is nothing to learn")


def _normalised(ids: tuple[str, ...]) -> dict[str, str]:
    """Ids keyed so that 's01' and 's1' (the same seed written twice) collide."""
    return {re.sub(r"\d+", lambda m: str(int(m.group())), w.strip().lower()): w for w in ids}


def _seconds(x: float) -> str:
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.1f} s"


def _listing(scores: dict[str, float]) -> str:
    return ", ".join(f"{n} {s:.6g}" for n, s in sorted(scores.items()))


def _local_sandbox(spec: pm.ProblemSpec):
    from evolve.config import RunConfig
    from evolve.run.session import make_sandbox
    return make_sandbox(RunConfig(sandbox="local", eval_slots=1), spec)


def check_problem(path: str | Path, make_sandbox: Callable | None = None,
                  on_finding: Callable[[Finding], None] | None = None) -> CheckReport:
    """Check the problem folder at `path` (or a bundled problem's name); `on_finding` sees each finding as it
    is made (the CLI prints them as they come, since the programs take a while)."""
    return _Checker(str(path), make_sandbox or _local_sandbox, on_finding).run()
