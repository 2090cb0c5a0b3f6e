"""Print every engine figure the README quotes, each from its own bench script:

    .venv/bin/python bench/figures.py

- loop overhead per iteration at 1,000 and 10,000 programs, and lineage DB size per 1,000 programs
- local sandbox overhead per candidate and empty round trip
- evaluations per second with 1 and 2 evaluation worker processes (a CPU-bound pure-Python evaluator)
- cost per policy call of per-step state as lists of dicts, numpy columns and deltas
- EPLB scoring time per window (excluding the candidate) and baseline/initial scores
- `adrs report` time on a synthetic 2,000-program run
"""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["loop_overhead.py", "sandbox_overhead.py", "eval_workers.py", "policy_call.py", "eplb_scoring.py",
           "report_speed.py"]

if __name__ == "__main__":
    for script in SCRIPTS:
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script)], check=True)
