"""Commands for problem authors: `adrs check-problem`, `adrs new-problem`, `adrs import-openevolve`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from evolve.cli.app import make_console, app

_MARK = {"ok": "[green]ok  [/]", "warn": "[yellow]WARN[/]", "fail": "[red]FAIL[/]"}


@app.command("check-problem")
def check_problem(path: str = typer.Argument(..., help="problem folder (or a bundled problem's name)")) -> None:
    """Check a problem as an author writes it: spec, evaluator, splits, initial and baselines in the sandbox,
    determinism, bounded score, time per evaluation. Exit status 0 only if nothing failed."""
    from evolve.authoring.check import check_problem as run_checks
    console = make_console()

    def show(f) -> None:
        console.print(f"{_MARK[f.level]} [bold]{f.check}[/]: ", end="")
        console.print(f.message, markup=False, highlight=False, soft_wrap=True)

    report = run_checks(path, on_finding=show)
    failed, warned = len(report.failed), len(report.warnings)
    console.print(f"{path}: {failed} failed, {warned} warning{'s' if warned != 1 else ''}")
    if failed:
        raise typer.Exit(1)


@app.command("new-problem")
def new_problem(name: str = typer.Argument(..., help="the problem's name (a Python identifier)"),
                kind: str = typer.Option("oneshot", help="oneshot (one call per workload) or stateful (an "
                                                         "init() and a decision per simulator step)"),
                dir: Path = typer.Option(Path("."), "--dir", help="folder to create the problem in")) -> None:
    """Write a complete, working problem (spec, README, initial, evaluator, baseline, test) to start from."""
    from evolve.authoring.scaffold import new_problem as scaffold
    folder = scaffold(name, kind, dir)
    console = make_console()
    console.print(f"wrote {folder}:")
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        console.print(f"  {f.relative_to(folder)}", markup=False)
    console.print(f"next: adrs check-problem {folder}  |  adrs eval {folder} {folder / 'initial.py'}  |  "
                  f"python -m pytest {folder}", markup=False)


@app.command("import-openevolve")
def import_openevolve(src: Path = typer.Argument(..., help="an OpenEvolve problem folder (initial_program.py, "
                                                 "evaluator.py, optional config.yaml)"),
                      out: Optional[Path] = typer.Option(None, "--out", help="folder to write the problem to "
                                                         "(default: ./<name>_adrs)"),
                      name: Optional[str] = typer.Option(None, help="the problem's name (default: the folder's)"),
                      family: str = typer.Option("other", help="the problem's family (adrs problems groups by it)")
                      ) -> None:
    """Write an OpenEvolve problem as a problem of ours; its evaluator runs inside the sandbox, unchanged."""
    from evolve.authoring.openevolve import import_openevolve as do_import
    done = do_import(src, out, name, family)
    console = make_console()
    console.print(f"wrote {done.folder}:", markup=False)
    for f in done.files:
        console.print(f"  {f.name}", markup=False)
    print_import_notes(console, done)
    console.print(f"next: adrs eval {done.folder} {done.folder / 'initial.py'}  |  "
                  f"adrs run {done.folder} --config {done.run_config}", markup=False)


def print_import_notes(console, done) -> None:
    """What an import kept, needs and dropped: cascade, packages, the ignored config keys (once, one line)."""
    src, cfg = done.source, done.config
    cascade = (f"cascade {', '.join(src.stages)} at thresholds {', '.join(f'{t:g}' for t in cfg.thresholds)}"
               if cfg.cascade and src.stages else "evaluate() once (no cascade)")
    console.print(f"evaluation: {cascade}; candidate functions the evaluator calls: {', '.join(src.functions)}",
                  markup=False)
    if src.packages:
        console.print(f"packages: {', '.join(src.packages)} (local sandbox: needs them in this Python; docker: "
                      f"adrs sandbox build --problem {done.folder})", markup=False)
    if cfg.ignored:
        console.print(f"config.yaml keys ignored (no meaning here): {', '.join(cfg.ignored)}", markup=False)
    console.print("[bold yellow]trust = \"sandboxed-evaluator\": the evaluator runs beside the candidate, so its "
                  "scores are only as honest as that evaluator[/]")


def trust_warning(spec) -> Optional[str]:
    """The line every command prints for a problem whose evaluator runs next to the candidate."""
    if not spec.sandboxed_evaluator:
        return None
    return (f"{spec.name}: trust = \"sandboxed-evaluator\": its evaluator runs inside the sandbox next to the "
            "candidate, so its scores are only as honest as that evaluator (a candidate can reach it)")
