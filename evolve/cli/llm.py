"""LLM commands and helpers of the CLI: `adrs replay`, `adrs doctor`, and the LLM parts of `adrs run`."""
from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import List, Optional

import typer

from evolve.cli.app import app, make_console
from evolve.errors import AdrsError


def check_keys(cfg) -> None:
    from evolve.llm.ensemble import parse_model_spec
    from evolve.llm.client import missing_keys
    for spec in cfg.models:
        model = parse_model_spec(spec)[0]
        missing = missing_keys(model, cfg.api_base)
        if missing:
            raise AdrsError(f"model '{model}' needs {', '.join(missing)} in the environment "
                            "(or --api-base URL for a local server); `adrs doctor` checks the setup")


def announce_proposer(console, cfg, any_key: bool) -> None:
    if not cfg.models:
        why = "No LLM key configured" if not any_key else "No model given (--model)"
        console.print(f"{why}: proposing with the offline mutator.")
        return
    check_keys(cfg)
    budget = f", budget ${cfg.max_cost:g}" if cfg.max_cost else ""
    where = f" via {cfg.api_base}" if cfg.api_base else ""
    console.print(f"Proposing with {', '.join(cfg.models)}{where}{budget}.")
    for name, lim in model_limits(cfg):
        console.print(f"  {name}: {lim.describe()}", markup=False, highlight=False)


def model_limits(cfg) -> list:
    """(model, ModelLimits) per model of the config: context window, max tokens, timeout."""
    from evolve.config import parse_model_spec
    from evolve.llm.limits import resolve
    names = [parse_model_spec(s)[0] for s in cfg.models]
    return [(n, resolve(n, cfg.api_base, cfg.llm_max_tokens, cfg.llm_timeout_s)) for n in names]


def make_proposer(h):
    from evolve.llm.proposer import make_proposer as make
    if h.cfg.models:
        check_keys(h.cfg)
    return make(h.cfg, h.spec, h.store, h.run_id)


def print_llm_usage(console, store, run_id: str) -> None:
    from evolve.llm.usage import print_usage
    print_usage(console, store, run_id)


@app.command()
def replay(run: str = typer.Argument(..., help="run folder (runs/<run-id>)"),
           db: Optional[str] = typer.Option(None, help="SQLAlchemy URL, when the run is not in a run folder"),
           run_id: Optional[str] = typer.Option(None, help="run id inside --db"),
           check: bool = typer.Option(False, help="exit 1 when the replayed lineage or a deterministic metric "
                                      "differs (noisy metrics are shown side by side, not compared)")) -> None:
    """Re-run a recorded run into a new run with zero LLM calls, serving the recorded answers in order."""
    from evolve.run import session
    from evolve.run.replay import replay as do_replay
    console = make_console()
    src = session.open_run(run, db or "", run_id or "")
    with session.stop_signals():  # SIGTERM, SIGHUP: the replay's status is recorded, as for Ctrl-C
        result = do_replay(src, console)
    from evolve.cli import views
    views.print_summary(console, session.open_run(str(result.run_dir), src.cfg.db, result.run_id).store,
                        result.run_id, src.spec.objective.score, src.spec.objective.metrics, src.cfg.final_top_k)
    if result.noisy:
        console.print(noisy_table(result))
    for line in result.baselines:  # scored afresh by every run, no part of the lineage: noted, not failed
        console.print(f"note: baseline not reproducible (not compared): {line}", markup=False)
    if result.matches:
        console.print(f"lineage matches {result.source_run}: {result.iterations} iterations identical, and every "
                      f"deterministic metric (replay: {result.run_dir})")
    else:
        console.print(f"lineage differs from {result.source_run}: {result.difference} (replay: {result.run_dir})")
        if result.completion_order:
            console.print(f"note: {result.source_run} committed in completion order, so a difference is expected "
                          "(`adrs run --order proposal` makes a run that replays exactly)")
        if result.noisy_score:
            console.print(f"note: the score '{src.spec.objective.score}' is a noisy metric (it mixes in measured "
                          "time), so programs with close scores can swap places and parents be drawn differently")
        if check:
            raise typer.Exit(1)


def noisy_table(result):
    """Noisy metrics (measured time) of the original and the replay side by side: not compared."""
    from rich.table import Table
    t = Table(title="noisy metrics, not compared: means over every value both runs measured")
    for c in ("metric", "values", result.source_run, "replay", "difference", "largest |difference|"):
        t.add_column(c, justify="left" if c == "metric" else "right")
    for n in result.noisy:
        t.add_row(n.metric, str(n.n), f"{n.original:.4g}", f"{n.replay:.4g}", f"{n.diff:+.4g}",
                  f"{n.max_abs_diff:.4g}")
    return t


@app.command()
def doctor(model: Optional[List[str]] = typer.Option(None, "--model", help="model to check (repeatable)"),
           api_base: Optional[str] = typer.Option(None, help="OpenAI-compatible server URL"),
           problem: Optional[str] = typer.Option(None, help="send this problem's first prompt (default: a short "
                                                 "edit task)"),
           config: Optional[Path] = typer.Option(None, help="TOML run settings (models, api_base, db)"),
           db: Optional[str] = typer.Option(None, help="SQLAlchemy URL to check"),
           sandbox: Optional[str] = typer.Option(None, help="sandbox backend the runs will use: local or docker"),
           max_tokens: Optional[int] = typer.Option(None, help="tokens per answer (default: from the model)"),
           timeout: Optional[float] = typer.Option(None, help="seconds to wait for each model (default: from "
                                                   "the model)")) -> None:
    """Check that the models turn a real edit task into an edit, the database opens and the sandbox works;
    say what to do otherwise."""
    from evolve import config as cfgmod
    base = cfgmod.load_file(config) if config else cfgmod.RunConfig()
    given = {k: v for k, v in dict(models=tuple(model) if model else None, api_base=api_base, db=db,
                                 sandbox=sandbox, llm_max_tokens=max_tokens, llm_timeout_s=timeout).items()
             if v is not None}
    cfg = cfgmod.build(given, "command line", base)
    console = make_console()
    checks = [*_model_checks(cfg, problem), _db_check(cfg), _sandbox_check(), _docker_check(cfg.sandbox == "docker")]
    failed = 0
    for name, ok, detail in checks:
        mark = "[green]ok[/]  " if ok else ("[yellow]--[/]  " if ok is None else "[red]FAIL[/]")
        console.print(f"{mark} {name}: ", end="")
        console.print(detail, markup=False, highlight=False)
        failed += ok is False
    if failed:
        raise typer.Exit(1)


def _model_checks(cfg, problem: str | None) -> list[tuple[str, bool | None, str]]:
    if not cfg.models:
        return [("models", None, "none configured: `adrs run` proposes with the offline mutator "
                                 "(give --model or models = [...] in --config)")]
    import dataclasses
    from evolve import problem as pm
    from evolve.config import parse_model_spec
    from evolve.llm.client import LlmClient, missing_keys
    from evolve.llm.doctor import check_model, first_prompt, short_task
    from evolve.llm.proposer import client_settings
    task = first_prompt(pm.load(problem)) if problem else short_task()
    client = LlmClient(dataclasses.replace(client_settings(cfg), attempts=1))
    out = []
    for spec in cfg.models:
        model = parse_model_spec(spec)[0]
        missing = missing_keys(model, cfg.api_base)
        if missing:
            out.append((f"model {model}", False, f"set {', '.join(missing)} in the environment "
                        "(or give --api-base for a local server)"))
            continue
        keys = _key_names(model, cfg.api_base)
        verdict = asyncio.run(check_model(client, model, task, keys))
        out.append((f"model {model}", verdict.ok, verdict.detail))
    return out


def _key_names(model: str, api_base: str) -> str:
    """The variable a key for `model` is read from, to word an auth failure; for a local server, without asking
    litellm (importing it costs seconds)."""
    if api_base:
        from evolve.llm.transport_openai import COMPATIBLE
        return COMPATIBLE.get(model.split("/", 1)[0], "the server's key variable")
    from evolve.llm.client import missing_keys
    return ", ".join(missing_keys(model)) or "the provider's key variable"


def _db_check(cfg) -> tuple[str, bool, str]:
    from evolve.store import Store
    if cfg.db:
        url, what = cfg.db, cfg.db
    else:
        runs = Path(cfg.runs_dir)
        try:
            runs.mkdir(parents=True, exist_ok=True)
            tmp = tempfile.NamedTemporaryFile(dir=runs, suffix=".db", delete=False)
            tmp.close()
        except OSError as e:
            return ("database", False, f"cannot write to {runs}/ ({e.strerror}): use --runs-dir or --db")
        url, what = f"sqlite:///{tmp.name}", f"SQLite files under {runs}/"
    try:
        Store.ping(url)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        return ("database", False, f"{what}: {first} -> check the URL, the server and the driver package")
    finally:
        if not cfg.db:
            Path(tmp.name).unlink(missing_ok=True)
    return ("database", True, f"{what} opens")


def _sandbox_check() -> tuple[str, bool, str]:
    from sandbox.base import Limits
    from sandbox.local import LocalSandbox
    try:
        sb = LocalSandbox()
        try:
            with sb.start("def ping(x):\n    return x + 1\n", Limits(call_timeout_s=10, workload_timeout_s=20)) as c:
                answer = c.call("ping", 41)
            iso = sb.isolation()
        finally:
            sb.close()
    except Exception as e:
        return ("sandbox", False, f"{type(e).__name__}: {str(e)[:200]} -> the local sandbox cannot start "
                "candidates here; check that fork and /tmp work")
    if answer != 42:
        return ("sandbox", False, f"a test candidate answered {answer!r} instead of 42")
    summary = ", ".join(f"{k}={v}" for k, v in list(iso.items())[:3])
    return ("sandbox", True, f"local backend runs candidates ({summary})")


def _docker_check(needed: bool) -> tuple[str, bool | None, str]:
    """A failure only fails the doctor when the runs will use Docker; otherwise it is a note."""
    fail = False if needed else None
    try:
        import docker
        docker.from_env(timeout=5).ping()
    except ImportError:
        return ("docker", fail, "the docker package is missing: pip install docker")
    except Exception as e:
        hint = "start the Docker daemon, or add your user to the docker group"
        return ("docker", fail, f"{str(e)[:160]} -> {hint}" + ("; or use --sandbox local" if needed else
                                                                "; only needed for --sandbox docker"))
    return ("docker", True, "daemon reachable")
