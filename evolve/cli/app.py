"""The typer application every command module registers on (kept apart so `python -m evolve.cli.main` and the
console script see the same app)."""
from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="adrs: evolve systems algorithms against trusted simulators.")


def make_console(stderr: bool = False):
    from rich.console import Console
    return Console(highlight=False, stderr=stderr)
