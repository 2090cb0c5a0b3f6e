"""The typer application every command module registers on (kept apart so `python -m evolve.cli.main` and the
console script see the same app), and the consoles every command prints through."""
from __future__ import annotations

import functools

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="adrs: evolve systems algorithms against trusted simulators.")

# Output that is not a terminal (a pipe, `| tee`, a log file) has no width to fit: rich would pick 80 columns
# and wrap or crop a table's figures. Such output gets full lines instead; tables keep their natural width.
UNBOUNDED_WIDTH = 100_000
RULE_WIDTH = 100   # a rule in a log file: wide enough to see, not padded to UNBOUNDED_WIDTH


def make_console(stderr: bool = False):
    console = _console_class()(highlight=False, stderr=stderr)
    if not console.is_terminal:
        console.width = UNBOUNDED_WIDTH
    return console


@functools.cache
def _console_class():
    from rich.console import Console

    class AdrsConsole(Console):
        def on_broken_pipe(self) -> None:
            """Rich exits the process with status 1 when its reader goes away (`| head`, a `| tee` killed first);
            a run must record its status first, so raise BrokenPipeError for the run's handlers instead."""
            if self.quiet:
                return
            self.quiet = True
            raise BrokenPipeError(32, "the output's reader closed the pipe")

    return AdrsConsole


def rule(console, title: str = "") -> None:
    """A titled separator line; never wider than RULE_WIDTH when the output is not a terminal."""
    from rich.rule import Rule
    console.print(Rule(title), width=min(console.width, RULE_WIDTH) if not console.is_terminal else None)


def code(console, text: str, lexer: str, line_numbers: bool = False):
    """Source text to print: highlighted on a terminal; elsewhere as wide as its longest line (not padded to
    the console's width, and never cropped)."""
    from rich.syntax import Syntax
    width = None if console.is_terminal else max((len(s) for s in text.splitlines()), default=1) + 1
    return Syntax(text, lexer, line_numbers=line_numbers, code_width=width)
