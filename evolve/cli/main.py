"""The `adrs` command line (typer). Heavy modules are imported inside commands so `adrs --help` is instant.

Every user error ends as one line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import gc
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer

from evolve.cli.app import make_console, app, rule
from evolve.errors import AdrsError

LLM_KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "DEEPSEEK_API_KEY", "OPENROUTER_API_KEY")


def _run_config(problem: str, config: Optional[Path], flags: dict):
    from evolve import config as cfgmod
    base = cfgmod.load_file(config) if config else cfgmod.RunConfig()
    given = {k: v for k, v in flags.items() if v is not None}
    return cfgmod.build({"problem": problem, **given}, "command line", base)


@app.command()
def run(problem: str = typer.Argument(..., help="bundled problem name or path to a problem folder"),
        iterations: Optional[int] = typer.Option(None, help="child iterations to run (default 100)"),
        seed: Optional[int] = typer.Option(None, help="run seed (default 0)"),
        max_wall_time: Optional[float] = typer.Option(None, help="stop proposing after this many seconds"),
        eval_slots: Optional[int] = typer.Option(None, help="evaluation worker processes (concurrent sandboxed evaluations)"),
        proposals: Optional[int] = typer.Option(None, help="concurrent proposals"),
        order: Optional[str] = typer.Option(None, help="commit order: proposal (default; a seed's lineage "
                                            "repeats) or completion (as evaluations finish; not reproducible)"),
        db: Optional[str] = typer.Option(None, help="lineage store URL: sqlite:///PATH or postgresql+psycopg://"
                                         "USER@HOST/DB (shared by several runs); default runs/<run>/lineage.db"),
        runs_dir: Optional[str] = typer.Option(None, help="where run folders go (default runs/)"),
        run_id: Optional[str] = typer.Option(None, help="name of the run (default <problem>-<time>-s<seed>)"),
        config: Optional[Path] = typer.Option(None, help="TOML file of run settings"),
        sandbox: Optional[str] = typer.Option(None, help="sandbox backend: local or docker"),
        executor: Optional[str] = typer.Option(None, help="where evaluations run: local (worker processes; "
                                               "default), ray (a local Ray started for the run) or "
                                               "ray://HOST:PORT (an existing Ray cluster)"),
        ray_address: Optional[str] = typer.Option(None, help="an existing Ray cluster to evaluate on: auto, "
                                                  "HOST:PORT or ray://HOST:PORT (implies --executor ray)"),
        model: Optional[List[str]] = typer.Option(None, "--model", help="litellm model string, optionally "
                                                  "MODEL:WEIGHT; repeat for an ensemble"),
        api_base: Optional[str] = typer.Option(None, help="OpenAI-compatible server URL (vLLM, Ollama, ...)"),
        max_cost: Optional[float] = typer.Option(None, help="stop proposing at this many dollars"),
        max_tokens: Optional[int] = typer.Option(None, help="tokens per LLM answer (default: from the model)"),
        llm_timeout: Optional[float] = typer.Option(None, help="seconds per LLM request (default: from the model)"),
        as_json: bool = typer.Option(False, "--json", help="print the final summary as JSON on stdout (for "
                                     "scripts); progress and messages go to stderr"),
        fresh_baselines: bool = typer.Option(False, "--fresh-baselines", help="measure the initial program and "
                                             "the baselines again instead of reusing an earlier run's results for "
                                             "this problem version (noisy metrics such as measured time too)")
        ) -> None:
    """Evolve a problem's initial program; ends with initial, best and baselines on train and held-out.
    PROBLEM may also be an OpenEvolve problem folder: it is imported under the runs folder first."""
    problem, config, offline = _openevolve_folder(problem, config, runs_dir, as_json)
    model = model or ([] if offline else None)
    cfg = _run_config(problem, config, dict(
        iterations=iterations, seed=seed, max_wall_time_s=max_wall_time, eval_slots=eval_slots,
        proposals_in_flight=proposals, order=order, db=db, runs_dir=runs_dir, run_id=run_id, sandbox=sandbox,
        executor=executor or ("ray" if ray_address else None), ray_address=ray_address,
        models=tuple(model) if model is not None else None, api_base=api_base, max_cost=max_cost,
        llm_max_tokens=max_tokens, llm_timeout_s=llm_timeout, baseline_cache=False if fresh_baselines else None))
    _check_packages(cfg.problem, cfg.sandbox)
    from evolve.run.executor import start_workers
    starting = start_workers(cfg)  # in the background, while the loop and the store are imported
    try:
        from evolve.run import session
        console = make_console(stderr=as_json)
        from evolve.cli.llm import announce_proposer
        announce_proposer(console, cfg, any(os.environ.get(k) for k in LLM_KEY_VARS))
        sb = starting.result()
    except BaseException:
        starting.cancel()
        raise

    def announce(h) -> None:
        console.print(f"run {h.run_id}: {h.spec.name}, seed {cfg.seed}, {cfg.iterations} iterations, "
                      f"store {h.store.url}")
        _warn_trust(console, h.spec)

    _drive(console, sb, lambda: session.create(cfg, sb), resumed=False, as_json=as_json, announce=announce)


def _openevolve_folder(problem: str, config: Optional[Path], runs_dir: Optional[str],
                       as_json: bool) -> tuple[str, Optional[Path], bool]:
    """An OpenEvolve problem folder: imported under <runs>/imported/ and run with the settings its config.yaml
    maps to (unless --config is given; its models only when an LLM key is set, else the offline mutator
    proposes: the third value says so); anything else is returned as it is."""
    from evolve.authoring.openevolve_folder import is_openevolve_folder
    if not is_openevolve_folder(Path(problem)):
        return problem, config, False
    from evolve.authoring.openevolve import import_for_run
    from evolve.cli.author import print_import_notes
    done = import_for_run(Path(problem), Path(runs_dir or "runs"))
    console = make_console(stderr=as_json)
    console.print(f"imported the OpenEvolve problem {problem} as {done.folder}", markup=False)
    print_import_notes(console, done)
    offline = config is None and not any(os.environ.get(k) for k in LLM_KEY_VARS) and "models" in done.config.run
    if offline:
        console.print(f"config.yaml names models {', '.join(done.config.run['models'])}, but no LLM key is set",
                      markup=False)
    return str(done.folder), config or done.run_config, offline


def _check_packages(problem: str, sandbox: str) -> None:
    from evolve import problem as pm
    spec = pm.load(problem, check_evaluator=False)
    if spec.sandboxed_evaluator:
        from evolve.authoring.openevolve import check_local_packages
        check_local_packages(spec, sandbox)


@app.command()
def resume(run: str = typer.Argument(..., help="run folder (runs/<run-id>)"),
           iterations: Optional[int] = typer.Option(None, help="raise the iteration budget"),
           db: Optional[str] = typer.Option(None, help="SQLAlchemy URL, when the run is not in a run folder"),
           run_id: Optional[str] = typer.Option(None, help="run id inside --db"),
           max_tokens: Optional[int] = typer.Option(None, help="change the tokens per LLM answer"),
           llm_timeout: Optional[float] = typer.Option(None, help="change the seconds per LLM request"),
           executor: Optional[str] = typer.Option(None, help="evaluate elsewhere from now on: local, ray or "
                                                  "ray://HOST:PORT (default: where the run evaluated)"),
           ray_address: Optional[str] = typer.Option(None, help="an existing Ray cluster to go on with (implies "
                                                     "--executor ray)"),
           as_json: bool = typer.Option(False, "--json", help="print the final summary as JSON on stdout")) -> None:
    """Continue a stopped or killed run from its lineage store. Where it evaluates may change (a run started
    here can go on on a Ray cluster); in proposal order the lineage does not depend on it."""
    from evolve import config as cfgmod
    from evolve.run import session
    h = session.open_run(run, db or "", run_id or "")
    changed = dict(iterations=iterations, llm_max_tokens=max_tokens, llm_timeout_s=llm_timeout,
                   executor=executor or ("ray" if ray_address else None),   # a new executor drops the old address
                   ray_address=ray_address if ray_address is not None else ("" if executor else None))
    h.cfg = cfgmod.build({k: v for k, v in changed.items() if v is not None}, "command line", h.cfg)
    console = make_console(stderr=as_json)
    console.print(f"resuming {h.run_id} after iteration {h.store.last_iteration(h.run_id)}")
    from evolve.run.executor import make_workers
    _drive(console, make_workers(h.cfg, h.spec), lambda: h, resumed=True, as_json=as_json)


def _drive(console, sb, open_run, resumed: bool, as_json: bool, announce=None) -> None:
    """Open the run (under stop_signals, so a signal while it is created is caught too), announce it, execute
    it, and record however it ends (a closed pipe while announcing included); the workers are always closed."""
    from evolve.run import session
    h = None
    try:
        with session.stop_signals():
            h = open_run()
            if announce:
                announce(h)
            _execute(h, sb, console, resumed=resumed, as_json=as_json)
    except (KeyboardInterrupt, BrokenPipeError, session.Stopped) as e:  # Ctrl-C, SIGTERM, SIGHUP, closed pipe
        _interrupted(console, h, e)
    except Exception as e:
        _failed(h, e)
        raise
    finally:
        sb.close()


def _interrupted(console, h, exc: BaseException) -> None:
    """A run/resume ended by a signal or a closed pipe at any point: record it (session.execute already has,
    inside the loop), say what is kept and how to go on; exit 128 + the signal."""
    from evolve.run import session
    if isinstance(exc, BrokenPipeError):  # stdout is gone: say it on stderr, and keep exit from writing there
        _silence_stdout()
        console = make_console(stderr=True)
    try:
        if h is None:
            console.print(f"{_why(exc)} before the run started; nothing was recorded")
        else:
            session.record_end(h, exc)
            console.print(f"{_why(exc)}; committed work is kept. Continue with: adrs resume {h.run_dir}")
    except OSError:  # the terminal itself went away (SIGHUP): the store has the status
        pass
    raise typer.Exit(session.exit_code(exc))


def _why(exc: BaseException) -> str:
    if isinstance(exc, BrokenPipeError):
        return "output closed"
    return f"stopped by {exc}" if type(exc) is not KeyboardInterrupt else "interrupted"


def _failed(h, exc: Exception) -> None:
    """An error outside the loop (the loop records its own): the run's status says failed, not started."""
    if h is not None:
        from evolve.run import session
        try:
            session.record_end(h, exc)
        except Exception:
            pass


def _silence_stdout() -> None:
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError):
        pass


def _execute(h, sb, console, resumed: bool, as_json: bool = False) -> None:
    from evolve.run import session
    from evolve.cli import views
    from evolve.cli.llm import make_proposer, print_llm_usage
    import contextlib
    # --json: stdout holds only the document, whatever a library prints meanwhile (Ray prints a lost
    # worker's notice to stdout) goes to stderr with the progress.
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        session.execute(h, sb, make_proposer(h), console, resumed=resumed)
    if as_json:  # stdout holds only this document; the console writes to stderr
        doc = {"run": h.run_id, "run_dir": str(h.run_dir), "store": h.store.url,
               **views.summary_json(h.store, h.run_id, h.spec.objective, h.cfg.final_top_k)}
        print(json.dumps(doc, indent=2))
    else:
        views.print_summary(console, h.store, h.run_id, h.spec.objective.score, h.spec.objective.metrics,
                            h.cfg.final_top_k)
    print_llm_usage(console, h.store, h.run_id)
    infra = h.store.failure_counts(h.run_id).get("infrastructure", 0)
    if infra:  # the sandbox failed, not the programs: say so plainly
        console.print(f"[yellow]{infra} evaluation(s) failed because the sandbox itself failed (reason "
                      f"'infrastructure', each retried once); see `adrs show {h.run_dir}`[/]")
    console.print(f"lineage: {h.store.url}")


@app.command("eval")
def eval_(problem: str = typer.Argument(..., help="bundled problem name or path"),
          file: Path = typer.Argument(..., help="program file to score"),
          split: Optional[str] = typer.Option(None, help="train (default) or held-out"),
          workload: Optional[List[str]] = typer.Option(None, "--workload", help="score on this workload id "
                                                       "instead of a split (repeatable; any id the problem accepts)"),
          sandbox: str = typer.Option("local", help="sandbox backend: local or docker"),
          no_sandbox: bool = typer.Option(False, "--no-sandbox",
                                          help="import FILE in this process, for debugging YOUR OWN trusted code"),
          as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """Score one program file exactly as the loop would, and print per-workload metrics."""
    from evolve import problem as pm
    from evolve.run.scoring import ProgramScorer
    spec = pm.load(problem)
    _warn_trust(make_console(stderr=True), spec)
    _check_packages(problem, "local" if no_sandbox else sandbox)
    label, ids = _eval_workloads(spec, split, workload or [])
    source = _eval_source(spec, file)
    sb = _eval_sandbox(spec, sandbox, no_sandbox)
    try:
        out = ProgramScorer(spec, sb).score(source, [(label, ids)])
    finally:
        sb.close()
    if as_json:
        print(json.dumps({"status": out.status, "reason": out.reason, "message": out.message,
                          "score": out.mean(label, spec.objective.score),
                          "metrics": out.metric_means(label),
                          "workloads": [{"workload": r.workload, "metrics": r.metrics, "samples": r.samples,
                                         "feedback": r.feedback} for r in out.results.get(label, [])],
                          "artifacts": out.artifacts}, indent=2))
    else:
        _print_scorecard(out, spec, label, f"{file} on {spec.name} ({label})")
    if not out.ok:
        raise typer.Exit(1)


def _warn_trust(console, spec) -> None:
    from evolve.cli.author import trust_warning
    if (line := trust_warning(spec)):
        console.print(f"[bold yellow]{line}[/]")


def _eval_workloads(spec, split: str | None, workloads: list[str]) -> tuple[str, tuple[str, ...]]:
    """A split's workloads, or the ids given with --workload (checked by the problem's evaluator)."""
    from evolve import problem as pm
    from evaluators.base import ConfigError
    if workloads and split:
        raise AdrsError("give --split or --workload, not both")
    if not workloads:
        split = split or "train"
        if split not in pm.SPLITS:
            raise AdrsError(f"--split must be one of {', '.join(pm.SPLITS)}, not '{split}'")
        return split, spec.workload_ids(split)
    evaluator = spec.make_evaluator()
    for wid in workloads:
        try:
            evaluator.check_workload(wid)
        except ConfigError as e:
            raise AdrsError(f"--workload '{wid}': {e}") from None
    return "workloads", tuple(workloads)


def _eval_source(spec, file: Path) -> str:
    from evolve import problem as pm
    if not file.is_file():
        raise AdrsError(f"{file}: no such file")
    source = file.read_text()
    try:
        names = pm.defined_functions(source)
    except SyntaxError as e:
        raise AdrsError(f"{file}: not valid Python: {e.msg} (line {e.lineno})") from None
    missing = [n for n in spec.entry.names if n not in names]
    if missing:
        raise AdrsError(f"{file}: does not define the entry point {', '.join(n + '()' for n in missing)}")
    return source


def _print_scorecard(out, spec, label: str, title: str) -> None:
    from evolve.cli.views import workload_table
    console = make_console()
    if out.ok:
        console.print(workload_table(out.results, title))
        for r in out.results.get(label, []):
            if r.feedback:
                console.print(f"{r.workload}: {r.feedback}", markup=False, highlight=False)
        console.print(f"{spec.objective.score}: {out.mean(label, spec.objective.score):.6g}")
    else:
        console.print(f"[red]failed[/]: {out.reason}: {out.message}")
        for k, v in out.artifacts.items():
            rule(console, k)
            console.print(v, markup=False, highlight=False)


def _eval_sandbox(spec, sandbox: str, no_sandbox: bool):
    if no_sandbox:  # for an author's own code: prints reach the terminal and a debugger works
        make_console(stderr=True).print(
            "[bold red]WARNING: --no-sandbox imports the program into this process: no isolation, no limits, "
            "your environment and API keys in reach. Use it only to debug code you trust.[/]")
        from sandbox.inprocess import InProcessSandbox
        return InProcessSandbox()
    from evolve.config import SANDBOXES, RunConfig
    from evolve.run.session import make_sandbox
    if sandbox not in SANDBOXES:
        raise AdrsError(f"--sandbox must be one of {', '.join(SANDBOXES)}, not '{sandbox}'")
    return make_sandbox(RunConfig(sandbox=sandbox, eval_slots=1), spec)


# Commands live in modules by concept; each registers itself on `app` when imported here.
from evolve.cli import browse as cli_inspect  # noqa: E402,F401  problems, list, show, diff
from evolve.cli import sandbox as cli_sandbox  # noqa: E402,F401  sandbox build, sandbox status
from evolve.cli import llm as cli_llm  # noqa: E402,F401  replay, doctor
from evolve.cli import report as cli_report  # noqa: E402,F401  report, compare
from evolve.cli import db as cli_db  # noqa: E402,F401  db version, db upgrade
from evolve.cli import author as cli_author  # noqa: E402,F401  check-problem, new-problem, import-openevolve
from evolve.cli import verify as cli_verify  # noqa: E402,F401  verify


def main(argv: List[str] | None = None) -> None:
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="adrs")
        code = rv if isinstance(rv, int) else 0
    except typer.Exit as e:
        code = e.exit_code
    except typer.Abort:
        print("adrs: aborted", file=sys.stderr)
        code = 130
    except AdrsError as e:
        print(f"adrs: error: {e}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print("adrs: interrupted", file=sys.stderr)
        code = 130
    except Exception as e:
        if not _is_usage_error(e):
            raise
        if e.format_message():
            print(f"adrs: error: {e.format_message()}", file=sys.stderr)
        code = getattr(e, "exit_code", 2)
    # The command is done and everything is closed: spare the interpreter's final garbage collection over the
    # hundreds of thousands of objects SQLAlchemy, numpy and rich built (about 0.08 s of a short run's exit).
    gc.freeze()
    sys.exit(code)


def _is_usage_error(e: Exception) -> bool:
    # typer vendors click's exception classes; recognise them by shape, not by a private import path
    return hasattr(e, "format_message") and isinstance(getattr(e, "exit_code", None), int)


if __name__ == "__main__":
    main()
