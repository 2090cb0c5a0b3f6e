"""Start-up speed with an LLM: wall time of `adrs run <toy> --iterations 1` against the test suite's instant
OpenAI-compatible server (tests/llm_server.py), median of --repeat, through each transport: "litellm"
(ADRS_LLM_TRANSPORT=litellm, every request through litellm, as before) and "httpx" (the default for a model
served through --api-base: litellm is never imported); the same run offline (no model), to show what the
LLM path adds; `adrs --help`; and, given --openevolve PYTHON (a
separate venv with `pip install openevolve==0.4.0`), OpenEvolve's one-iteration run of the same problem
against the same server.

    .venv/bin/python bench/startup.py [--repeat 5] [--openevolve /tmp/oe-venv/bin/python]

Goal: the httpx run within 1.5x OpenEvolve's wall time; `adrs --help` ~0.14 s.
Each run starts a fresh interpreter; a first round is a warm-up (not timed), so every timed run finds the
same warm page cache and, where adrs caches evaluations, the same cache. The rounds interleave the kinds, and
CPU seconds (process and children) are printed beside wall time: on a shared machine they vary less.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.llm_server import Reply, ScriptedServer  # noqa: E402

TOY = ROOT / "tests" / "fixtures" / "toy"
MODEL = "openai/adrs-test-unpriced"
_A = re.compile(r"\ba = ([-0-9.e]+)")

# OpenEvolve's side: the toy's metric (mean 1 / (1 + mse) over the train workloads w0-w2, 16 points each)
OE_EVALUATOR = '''import importlib.util
import numpy as np

def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    scores = []
    for seed in (0, 1, 2):
        xs = np.random.default_rng(seed).uniform(-2, 2, 16)
        pred = np.asarray(mod.predict([float(x) for x in xs]), dtype=float)
        scores.append(1.0 / (1.0 + float(np.mean((pred - (3 * xs**2 - 2 * xs + 1)) ** 2))))
    return {"combined_score": float(np.mean(scores))}
'''
OE_CONFIG = """max_iterations: 1
random_seed: 42
log_level: WARNING
llm:
  api_base: "{url}"
  api_key: "none"
  models:
    - name: "adrs-test-unpriced"
      weight: 1.0
  timeout: 60
  retries: 0
evaluator:
  cascade_evaluation: false
  parallel_evaluations: 1
"""


def instant_diff(body: dict) -> Reply:
    """A valid SEARCH/REPLACE on the toy's `a` for either tool's prompt (they word it differently)."""
    text = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
    m = _A.search(text)
    if m is None:
        return Reply("no program found", kind="garbage")
    old = m.group(1)
    return Reply(f"```\n<<<<<<< SEARCH\n    a = {old}\n=======\n    a = {float(old) + 0.5!r}\n>>>>>>> REPLACE\n```\n",
                 kind="valid")


@dataclass
class Kind:
    name: str
    cmd: list[str]
    env: dict
    cwd: Path
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)   # user + system seconds of the process and its children


def run_once(k: Kind) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(k.cmd, env=k.env, cwd=k.cwd, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{k.name} failed ({r.returncode}):\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(kinds: list[Kind], repeat: int) -> None:
    """One untimed warm-up round, then `repeat` rounds, each running every kind once: interleaved, so a
    load that comes and goes on a shared machine weighs on every kind alike."""
    for k in kinds:
        run_once(k)
    for _ in range(repeat):
        for k in kinds:
            wall, cpu = run_once(k)
            k.wall.append(wall)
            k.cpu.append(cpu)


def adrs_run(url: str, runs: Path, transport: str, name: str) -> Kind:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "ADRS_LLM_TRANSPORT": transport}
    cmd = [sys.executable, "-m", "evolve.cli.main", "run", str(TOY), "--iterations", "1", "--model", MODEL,
           "--api-base", url, "--runs-dir", str(runs)]
    return Kind(name, cmd, env, ROOT)


def openevolve_run(python: str, url: str, tmp: Path) -> Kind:
    (tmp / "evaluator.py").write_text(OE_EVALUATOR)
    (tmp / "config.yaml").write_text(OE_CONFIG.format(url=url))
    runner = Path(python).parent / "openevolve-run"
    cmd = [str(runner), str(TOY / "initial.py"), str(tmp / "evaluator.py"), "--config", str(tmp / "config.yaml"),
           "--iterations", "1", "--output", str(tmp / "oe-out")]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return Kind("openevolve 0.4.0 run --iterations 1", cmd, env, tmp)


def report(k: Kind) -> tuple[float, float]:
    wall, cpu = statistics.median(k.wall), statistics.median(k.cpu)
    print(f"{k.name:<46} wall median {wall:5.2f} s ({', '.join(f'{t:.2f}' for t in k.wall)}); "
          f"CPU median {cpu:5.2f} s")
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--openevolve", default="", help="python of a venv with openevolve==0.4.0 installed")
    a = ap.parse_args()
    help_kind = Kind("adrs --help", [sys.executable, "-m", "evolve.cli.main", "--help"],
                     {**os.environ, "PYTHONPATH": str(ROOT)}, ROOT)
    with ScriptedServer(default=instant_diff) as srv, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        before = adrs_run(srv.base_url, tmp / "a", "litellm", "adrs run --iterations 1, litellm (before)")
        after = adrs_run(srv.base_url, tmp / "b", "auto", "adrs run --iterations 1, httpx (after)")
        offline = Kind("adrs run --iterations 1, offline (no model)", [
            sys.executable, "-m", "evolve.cli.main", "run", str(TOY), "--iterations", "1", "--runs-dir",
            str(tmp / "c")], {**after.env, "OPENAI_API_KEY": ""}, ROOT)
        kinds = [help_kind, before, after, offline]
        oe = openevolve_run(a.openevolve, srv.base_url, tmp) if a.openevolve else None
        kinds += [oe] if oe else []
        measure(kinds, a.repeat)
        print(f"server: {len(srv.requests)} requests, {srv.count('valid')} answered with a valid diff; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    results = {k.name: report(k) for k in kinds}
    (bw, bc), (aw, ac) = results[before.name], results[after.name]
    ow_, oc_ = results[offline.name]
    print(f"httpx saves {bw - aw:.2f} s wall ({bc - ac:.2f} s CPU) per run; the LLM path costs "
          f"{aw - ow_:+.2f} s wall ({ac - oc_:+.2f} s CPU) over the same run without a model")
    if oe:
        ow, oc = results[oe.name]
        print(f"adrs/OpenEvolve: wall {aw / ow:.2f}x, CPU {ac / oc:.2f}x (goal <= 1.5x wall): "
              f"{'met' if aw / ow <= 1.5 else 'MISSED'}")
    else:
        print("OpenEvolve not measured (give --openevolve PYTHON of a venv with openevolve==0.4.0)")


if __name__ == "__main__":
    main()
