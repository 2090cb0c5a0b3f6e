"""Report speed: write a synthetic 2,000-program EPLB run through the real store API, then time `adrs report`
on it (a subprocess, imports included) and print the figures.

    .venv/bin/python bench/report_speed.py [--programs 2000] [--no-llm] [--keep DIR]

The run looks like a real LLM run of that size: EPLB's initial source, each child changing a constant and
adding a comment line, with its diff; 5 train workloads x 5 metrics plus the quick workload (runtime with raw
samples); ~30% failed attempts (edit errors without a program; exceptions, invalid outputs and timeouts with
a traceback artifact); one LLM call per attempt with a ~6 KB prompt and its response; held-out scores for the
initial program, the best program and four baselines.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evolve import problem  # noqa: E402
from evolve.config import RunConfig  # noqa: E402
from evolve.search.edits import unified_diff  # noqa: E402
from evolve.store import MetricRow, NewAttempt, NewProgram, Run, Store, sqlite_url  # noqa: E402

METRICS = ["score", "balancedness", "layer_time_us", "time_efficiency", "runtime_ms"]


def metric_rows(spec, split: str, quality: float, rng: random.Random) -> list[MetricRow]:
    ids = spec.workload_ids(split)
    rows = []
    for w in ids:
        q = max(0.0, min(1.0, quality + rng.gauss(0, 0.02)))
        runtime = [abs(rng.gauss(2.0, 0.3)) for _ in range(5)]
        vals = {"score": q, "balancedness": q * 0.95, "layer_time_us": 1000 / (0.1 + q),
                "time_efficiency": q, "runtime_ms": sorted(runtime)[2]}
        rows += [MetricRow(w, split, m, vals[m], runtime if m == "runtime_ms" else None) for m in METRICS]
    return rows


def mutate(source: str, i: int, rng: random.Random) -> str:
    """A valid child: one float constant changed and a comment line added (an edit of a few lines)."""
    consts = list(re.finditer(r"\b\d+\.\d+\b", source))
    m = rng.choice(consts)
    source = f"{source[:m.start()]}{rng.uniform(0.05, 4):.3f}{source[m.end():]}"
    lines = source.splitlines()
    body = [k for k, line in enumerate(lines) if line.startswith("    ")]
    k = rng.choice(body)
    indent = lines[k][:len(lines[k]) - len(lines[k].lstrip())]
    lines.insert(k, f"{indent}# iteration {i}: retuned")
    return "\n".join(lines) + "\n"


def llm_call(parent_src: str, child_src: str, readme: str, rng: random.Random) -> dict:
    prompt = [{"role": "system", "content": "You improve systems algorithms. " * 20},
              {"role": "user", "content": f"{readme}\n\n# Parent program\n```python\n{parent_src}\n```\n"}]
    return dict(model="synthetic/model-large", messages=json.dumps(prompt),
                response=f"<<<<<<< SEARCH\n{parent_src[:400]}\n=======\n{child_src[:400]}\n>>>>>>> REPLACE\n",
                prompt_tokens=1800, completion_tokens=350, cost_usd=round(rng.uniform(0.002, 0.02), 5),
                latency_s=rng.uniform(2, 9))


def build_run(db: Path, n: int, with_llm: bool, seed: int = 0) -> str:
    spec = problem.load("eplb", check_evaluator=False)
    readme = (spec.directory / "README.md").read_text()
    rng = random.Random(seed)
    store = Store(sqlite_url(db), create=True)
    run_id = db.parent.name
    cfg = RunConfig(problem="eplb", iterations=int(n * 1.15), run_id=run_id)
    store.create_run(Run(id=run_id, problem="eplb", problem_dir=str(spec.directory), seed=seed,
                         config=cfg.to_json(), sandbox="local", isolation="{}", versions="{}",
                         created_at=time.time()))
    init_src = spec.initial_source()
    pool: list[tuple[int, int, str, float, int]] = []   # (id, island, source, quality, generation)
    q0 = 0.76
    init = NewProgram(kind="initial", source=init_src, status="ok", iteration=0, score=q0,
                      origin="initial program", metrics=metric_rows(spec, "train", q0, rng))
    pid = store.commit_attempt(run_id, NewAttempt(0, 0, None, "initial", "train", "ok", program=init))
    pool.append((pid, 0, init_src, q0, 0))
    programs, i = 1, 0
    while programs < n:   # n programs (initial + children); edit failures add attempts without one
        i += 1
        island = i % 4
        cands = [p for p in pool if p[1] == island] or pool
        parent = max(rng.sample(cands, min(4, len(cands))), key=lambda p: p[3])
        ppid, _, psrc, pq, pgen = parent
        src = mutate(psrc, i, rng)
        att = NewAttempt(i, island, ppid, "llm:synthetic/model-large", "propose", "failed",
                         duration_s=rng.uniform(1, 10), proposal="<<<<<<< SEARCH ...")
        if with_llm:
            att.llm_calls = [llm_call(psrc, src, readme, rng)]
        r = rng.random()
        if r < 0.12:   # the edit did not apply: no program
            att.stage, att.reason, att.message = "edit", "search_not_found", "SEARCH block not found in parent"
        elif r < 0.30:  # evaluated and failed
            att.stage, att.reason = "quick", rng.choice(["exception", "invalid_output", "timeout"])
            att.message = "IndexError: list index out of range"
            att.program = NewProgram(kind="child", source=src, status="failed", iteration=i, parent_id=ppid,
                                     island=island, generation=pgen + 1, diff=unified_diff(psrc, src),
                                     reason=att.reason, origin="llm edit",
                                     artifacts={"traceback": "Traceback (most recent call last):\n  ...\n"
                                                "IndexError: list index out of range\n" * 3})
        else:
            q = max(0.0, min(0.95, pq + rng.gauss(-0.004, 0.01)))
            att.stage, att.status = "train", "ok"
            att.program = NewProgram(kind="child", source=src, status="ok", iteration=i, parent_id=ppid,
                                     island=island, generation=pgen + 1, diff=unified_diff(psrc, src), score=q,
                                     origin=f"llm edit: tuned constant {i}",
                                     metrics=metric_rows(spec, "train", q, rng) + metric_rows(spec, "quick", q, rng),
                                     artifacts={"stderr": "warning: slow path\n"} if rng.random() < 0.1 else {})
        new_id = store.commit_attempt(run_id, att)
        programs += att.program is not None
        if att.status == "ok":
            pool.append((new_id, island, src, att.program.score, pgen + 1))
    best = max(pool, key=lambda p: p[3])
    for pid_, q in ((pool[0][0], q0), (best[0], best[3])):
        store.add_metrics(pid_, metric_rows(spec, "held-out", q - 0.005, rng))
    for name, src in spec.baseline_sources().items():
        q = rng.uniform(0.58, 0.89)
        store.add_program(run_id, NewProgram(kind="baseline", name=name, source=src, status="ok", score=q,
                                             origin=f"baseline {name}",
                                             metrics=metric_rows(spec, "train", q, rng)
                                             + metric_rows(spec, "held-out", q, rng)))
    store.add_event(run_id, "finished", "iterations")
    store.close()
    return run_id


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--programs", type=int, default=2000)
    ap.add_argument("--no-llm", action="store_true", help="leave out the LLM call records")
    ap.add_argument("--keep", type=Path, help="write the run here and keep it (default: a temp dir)")
    a = ap.parse_args()
    base = a.keep or Path(tempfile.mkdtemp(prefix="adrs-bench-report-"))
    run_dir = base / f"synthetic-{a.programs}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    build_run(run_dir / "lineage.db", a.programs, not a.no_llm)
    print(f"built a {a.programs}-program run in {time.perf_counter() - t0:.1f} s; "
          f"lineage.db {(run_dir / 'lineage.db').stat().st_size / 1e6:.1f} MB")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "evolve.cli.main", "report", str(run_dir)], cwd=ROOT,
                       capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"adrs report failed:\n{r.stderr}")
    rep = run_dir / "report"
    size = sum(f.stat().st_size for f in rep.rglob("*") if f.is_file())
    pages = len(list((rep / "programs").glob("*.html")))
    print(r.stdout.strip())
    print(f"adrs report: {dt:.2f} s wall (goal < 10 s), {pages} program pages, "
          f"index.html {(rep / 'index.html').stat().st_size / 1e6:.2f} MB, report folder {size / 1e6:.1f} MB")
    if not a.keep:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
