"""HTML reports from the command line: `adrs report RUN` and `adrs compare RUN1 RUN2 ...`."""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from evolve.cli.app import app, make_console
from evolve.errors import AdrsError


def _gather(run: str, db: Optional[str]):
    """(RunData, run folder) for a run folder, a run id under runs/, or a run id inside --db."""
    from evolve.run import session
    from evolve.report.data import gather
    p = Path(run)
    if not db and not p.exists() and (Path("runs") / run).exists():
        p = Path("runs") / run
    store, rid, run_dir = session.locate(str(p), db or "", p.name if db else "")
    try:
        return gather(store, rid), run_dir
    finally:
        store.close()


@app.command()
def report(run: str = typer.Argument(..., help="run folder or run id"),
           out: Optional[Path] = typer.Option(None, help="output folder (default: <run folder>/report)"),
           db: Optional[str] = typer.Option(None, help="SQLAlchemy URL holding the run")) -> None:
    """Write a static HTML report of a run (opens offline from disk): runs/<run>/report/index.html."""
    from evolve.report.site import write_report
    t0 = time.perf_counter()
    data, run_dir = _gather(run, db)
    index = write_report(data, out or run_dir / "report")
    if (trust := data.run["isolation"].get("scores")):  # recorded for problems whose evaluator is sandboxed
        make_console(stderr=True).print(f"[bold yellow]{data.run['problem']}: {trust}[/]")
    make_console().print(f"report: {index} ({len(data.programs)} programs, {len(data.attempts)} attempts, "
                         f"{time.perf_counter() - t0:.1f} s)")


@app.command()
def compare(runs: List[str] = typer.Argument(..., help="two or more run folders or run ids"),
            out: Path = typer.Option(Path("runs") / "compare", help="output folder"),
            db: Optional[str] = typer.Option(None, help="SQLAlchemy URL holding the runs")) -> None:
    """Write a comparison page of runs: score against iterations and dollars, best programs side by side."""
    from evolve.report.compare import write_compare
    if len(runs) < 2:
        raise AdrsError("compare needs at least two runs")
    gathered = [_gather(r, db) for r in runs]
    ids = [d.run_id for d, _ in gathered]
    if len(set(ids)) != len(ids):
        raise AdrsError(f"the same run is given twice: {', '.join(ids)}")
    index = write_compare(gathered, out)
    make_console().print(f"comparison: {index} ({len(gathered)} runs)")
