"""`adrs verify RUN --top K`: a run's best programs and the baselines measured by the problem's real verifier."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from evolve.cli.app import app, make_console
from evolve.errors import AdrsError


@app.command()
def verify(run: str = typer.Argument(..., help="run folder or run id"),
           top: int = typer.Option(3, "--top", help="how many of the run's best programs to measure (with every "
                                   "baseline)"),
           device: str = typer.Option("auto", help="auto (a CUDA GPU when present, else the CPU at tiny shapes), "
                                      "cuda or cpu"),
           sandbox: Optional[str] = typer.Option(None, help="sandbox backend for the programs' decisions "
                                                 "(default: the run's)"),
           runs_dir: Path = typer.Option(Path("runs"), help="where run folders are, for a bare run id"),
           db: Optional[str] = typer.Option(None, help="SQLAlchemy URL holding the run")) -> None:
    """Measure the run's top programs and the baselines with the problem's real verifier (the verify table of
    problem.toml; EPLB: the MoE layer microbenchmark); store the measurements and compare the rankings."""
    from evolve.config import SANDBOXES, RunConfig
    from evolve.run import session
    from evolve.run.verify import no_verifier_message, verify_run
    h = _open(run, runs_dir, db)
    console = make_console()
    try:
        if h.spec.verify is None:
            raise AdrsError(no_verifier_message(h.spec))
        backend_name = sandbox or h.cfg.sandbox
        if backend_name not in SANDBOXES:
            raise AdrsError(f"--sandbox must be one of {', '.join(SANDBOXES)}, not '{backend_name}'")
        sb = session.make_sandbox(RunConfig(sandbox=backend_name, eval_slots=1), h.spec)
        try:
            out = verify_run(h.store, h.run_id, h.spec, sb, top, device,
                             log=lambda m: console.print(m, markup=False, highlight=False))
        finally:
            sb.close()
    finally:
        h.store.close()
    print_agreement(console, out.agreement)
    console.print(f"stored as verification {out.batch} of run {h.run_id}; `adrs report {h.run_dir}` shows it")


def _open(run: str, runs_dir: Path, db: Optional[str]):
    from evolve.run import session
    p = Path(run)
    if not db and not p.exists() and (runs_dir / run).exists():
        p = runs_dir / run
    return session.open_run(str(p), db or "", p.name if db else "")


def print_agreement(console, a) -> None:
    t = Table(title=f"Simulator ({a.basis}) against {a.verifier} — {a.device}")
    for c in ("entrant", f"simulator ({a.basis})", "sim rank", "measured score", "measured rank", "spread", "drift"):
        t.add_column(c, justify="left" if c == "entrant" else "right")
    for r in a.ranked:
        t.add_row(r.name, f"{r.sim_score:.4g}", str(r.sim_rank), f"{r.score:.4g}", str(r.measured_rank),
                  f"{r.spread:.1%}", "flagged" if r.drift_flagged else "")
    console.print(t)
    for name in a.unranked:
        console.print(f"{name}: measured, but the run holds no simulator score for it (the final stage did not "
                      "score it)", markup=False)
    for name, reason in a.failed:
        console.print(f"[red]{name}: failed[/] {reason}")
    for d in a.disagreements:
        console.print(f"disagreement: {d.text()}", markup=False, highlight=False)
    console.print(a.summary_line(), markup=False, highlight=False, soft_wrap=True)
