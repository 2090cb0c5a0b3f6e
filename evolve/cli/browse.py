"""Inspecting runs from the terminal: `adrs problems`, `list`, `show`, `diff`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from evolve.cli.app import make_console, app


@app.command()
def problems() -> None:
    """List the bundled problems, and those installed packages ship (entry points `adrs.problems`), by family."""
    from evolve import problem as pm
    from evolve.errors import AdrsError
    specs = [(pm.load(d, check_evaluator=False), d.name, "") for d in pm.bundled_problems()]
    bundled = {name for _, name, _ in specs}
    for name, (folder, dist) in pm.installed_problems().items():
        if name in bundled:
            print(f"{name:20s} {'':15s} (package {dist} ships a problem of this name; the bundled one is used)")
            continue
        try:
            specs.append((pm.load(folder, check_evaluator=False), name, f" [package {dist}]"))
        except AdrsError as e:
            print(f"{name:20s} {'?':15s} cannot load (package {dist}): {e}")
    for spec, name, origin in sorted(specs, key=lambda x: (pm.FAMILIES.index(x[0].family), x[1])):
        trust = " [sandboxed evaluator: scores only as honest as that evaluator]" if spec.sandboxed_evaluator else ""
        print(f"{name:20s} {spec.family:15s} {spec.description}{origin}{trust}")


@app.command("list")
def list_(runs_dir: Path = typer.Option(Path("runs"), help="folder of run folders"),
          db: Optional[str] = typer.Option(None, help="list the runs inside this SQLAlchemy URL"),
          as_json: bool = typer.Option(False, "--json", help="machine-readable output: one object per run")) -> None:
    """List runs."""
    from rich.table import Table
    from evolve.store import Store, sqlite_url
    from evolve.cli.views import run_summary
    stores = [Store(db)] if db else [Store(sqlite_url(p)) for p in sorted(runs_dir.glob("*/lineage.db"))]
    rows = []
    for st in stores:
        for r in st.runs():
            s = run_summary(st, r.id)
            rows.append({k: s[k] for k in LIST_FIELDS} | {"store": st.url})
        st.close()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    t = Table()
    for c in ("run", "problem", "seed", "iterations", "best", "failures", "status"):
        t.add_column(c)
    for s in rows:
        best = "-" if s["best"] is None else f"{s['best']['score']:.4g}"
        t.add_row(s["run"], s["problem"], str(s["seed"]), str(s["iterations"]), best,
                  str(sum(s["failures"].values())), s["status"])
    make_console().print(t if t.row_count else f"no runs in {db or runs_dir}")


LIST_FIELDS = ("run", "problem", "seed", "iterations", "attempts", "programs_ok", "best", "failures", "status")


def _open(run: str, db: Optional[str]):
    from evolve.run import session
    p = Path(run)
    if not db and not p.exists() and (Path("runs") / run).exists():
        p = Path("runs") / run
    return session.open_run(str(p), db or "", p.name if db else "")


@app.command()
def show(run: str = typer.Argument(..., help="run folder or run id"),
         program: Optional[int] = typer.Argument(None, help="program id"),
         as_json: bool = typer.Option(False, "--json", help="machine-readable output (a run: its summary "
                                      "and final table under 'final')"),
         db: Optional[str] = typer.Option(None, help="SQLAlchemy URL holding the run")) -> None:
    """Show a run's summary, or one program: code, metrics, parent, how it was made."""
    from evolve.cli import views
    h = _open(run, db)
    if program is not None:
        if as_json:
            print(json.dumps(views.program_json(h.store, h.run_id, program), indent=2))
        else:
            views.print_program(make_console(), h.store, h.run_id, program)
        return
    from evolve.run.verify import latest
    summary = views.run_summary(h.store, h.run_id)
    verified = latest(h.store, h.run_id)
    if as_json:
        summary["final"] = views.summary_json(h.store, h.run_id, h.spec.objective, h.cfg.final_top_k)
        summary["verification"] = verified.summary_line() if verified else None
        print(json.dumps(summary, indent=2))
        return
    console = make_console()
    for k in ("run", "problem", "seed", "sandbox", "status", "iterations", "attempts", "programs_ok",
              "failures", "best", "isolation"):
        console.print(f"[bold]{k}[/]: {summary[k]}")
    views.print_summary(console, h.store, h.run_id, h.spec.objective.score, h.spec.objective.metrics,
                        h.cfg.final_top_k)
    if verified:   # `adrs verify`: the real verifier's ranking against the simulator's, in one line
        console.print(verified.summary_line(), markup=False, highlight=False, soft_wrap=True)


@app.command()
def diff(run: str = typer.Argument(...), a: int = typer.Argument(..., help="program id"),
         b: int = typer.Argument(..., help="program id"),
         db: Optional[str] = typer.Option(None, help="SQLAlchemy URL holding the run")) -> None:
    """Show the diff between two programs of a run."""
    from evolve.cli.app import code
    from evolve.search.edits import unified_diff
    h = _open(run, db)
    pa, pb = h.store.program(h.run_id, a), h.store.program(h.run_id, b)
    text = unified_diff(pa.source, pb.source)
    console = make_console()
    console.print(code(console, text, "diff") if text else "(identical)")
