"""LLM commands and helpers of the CLI: `adrs replay`, `adrs doctor`, and the LLM parts of `adrs run`."""
from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import List, Optional

import typer

from evolve.cli.app import app, make_console
from evolve.errors import AdrsError

ADVICE = {
    "auth_error": "the provider rejected the key: check the key variable ({keys})",
    "not_found": "the provider does not know this model: check the litellm model string (e.g. openai/gpt-4.1-mini)",
    "connection_error": "cannot reach the server: check --api-base and that the server is running",
    "timeout": "no answer in time: the server is slow or down; try again or raise llm_timeout_s",
    "rate_limited": "rate-limited: wait, or run with fewer --proposals",
    "server_error": "the provider failed (5xx): try again later",
    "bad_request": "the request was refused: check the model string and --api-base",
    "context_window": "the prompt is too long for this model",
    "truncated": "the answer was cut at max tokens (the model answers; raise llm_max_tokens for runs)",
    "error": "unexpected error; the message above says more",
}


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
           check: bool = typer.Option(False, help="exit 1 when the replayed lineage differs")) -> None:
    """Re-run a recorded run into a new run with zero LLM calls, serving the recorded answers in order."""
    from evolve.run import session
    from evolve.run.replay import replay as do_replay
    console = make_console()
    src = session.open_run(run, db or "", run_id or "")
    result = do_replay(src, console)
    from evolve.cli import views
    views.print_summary(console, session.open_run(str(result.run_dir), src.cfg.db, result.run_id).store,
                        result.run_id, src.spec.objective.score, src.spec.objective.metrics, src.cfg.final_top_k)
    if result.matches:
        console.print(f"lineage matches {result.source_run}: {result.iterations} iterations identical "
                      f"(replay: {result.run_dir})")
    else:
        console.print(f"lineage differs from {result.source_run}: {result.difference} (replay: {result.run_dir})")
        if check:
            raise typer.Exit(1)


@app.command()
def doctor(model: Optional[List[str]] = typer.Option(None, "--model", help="model to check (repeatable)"),
           api_base: Optional[str] = typer.Option(None, help="OpenAI-compatible server URL"),
           config: Optional[Path] = typer.Option(None, help="TOML run settings (models, api_base, db)"),
           db: Optional[str] = typer.Option(None, help="SQLAlchemy URL to check"),
           sandbox: Optional[str] = typer.Option(None, help="sandbox backend the runs will use: local or docker"),
           timeout: float = typer.Option(60.0, help="seconds to wait for each model")) -> None:
    """Check that the models answer, the database opens and the sandbox works; say what to do otherwise."""
    from evolve import config as cfgmod
    base = cfgmod.load_file(config) if config else cfgmod.RunConfig()
    given = {k: v for k, v in dict(models=tuple(model) if model else None, api_base=api_base, db=db,
                                 sandbox=sandbox).items()
             if v is not None}
    cfg = cfgmod.build(given, "command line", base)
    console = make_console()
    checks = [*_model_checks(cfg, timeout), _db_check(cfg), _sandbox_check(), _docker_check(cfg.sandbox == "docker")]
    failed = 0
    for name, ok, detail in checks:
        mark = "[green]ok[/]  " if ok else ("[yellow]--[/]  " if ok is None else "[red]FAIL[/]")
        console.print(f"{mark} {name}: {detail}")
        failed += ok is False
    if failed:
        raise typer.Exit(1)


def _model_checks(cfg, timeout: float) -> list[tuple[str, bool | None, str]]:
    if not cfg.models:
        return [("models", None, "none configured: `adrs run` proposes with the offline mutator "
                                 "(give --model or models = [...] in --config)")]
    import dataclasses
    import numpy as np
    from evolve.llm.ensemble import parse_model_spec
    from evolve.llm.client import LlmClient, missing_keys
    from evolve.llm.proposer import client_settings
    settings = dataclasses.replace(client_settings(cfg), timeout_s=timeout, attempts=1, max_tokens=16)
    out = []
    for spec in cfg.models:
        model = parse_model_spec(spec)[0]
        missing = missing_keys(model, cfg.api_base)
        if missing:
            out.append((f"model {model}", False, f"set {', '.join(missing)} in the environment "
                        "(or give --api-base for a local server)"))
            continue
        messages = [{"role": "user", "content": "Reply with the single word: ok"}]
        rec = asyncio.run(LlmClient(settings).complete(model, messages, np.random.default_rng(0)))[-1]
        if rec.error and rec.kind != "truncated":
            keys = ", ".join(missing_keys(model)) or "the provider's key variable"
            out.append((f"model {model}", False, f"{rec.error[:160]} -> {ADVICE[rec.kind].format(keys=keys)}"))
        else:
            cost = "price unknown" if rec.cost_usd is None else f"${rec.cost_usd:.6f}"
            out.append((f"model {model}", True, f"answered in {rec.latency_s:.1f} s "
                        f"({rec.prompt_tokens}+{rec.completion_tokens} tokens, {cost})"))
    return out


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
