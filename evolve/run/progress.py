"""Live progress on the terminal (rich): iteration, best score, evaluations/s, failures by reason."""
from __future__ import annotations

import time

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from evolve.run.controller import LoopStats


class Progress:
    """Rendered at most ~8 times a second so a fast loop is not slowed by drawing."""

    def __init__(self, console: Console, total: int, run_id: str) -> None:
        self.console, self.total, self.run_id = console, total, run_id
        self._live = Live(console=console, refresh_per_second=8, transient=False)
        self._last = 0.0
        self._t0 = time.perf_counter()
        self._latest = 0   # the highest iteration committed: in completion order they commit out of order

    def __enter__(self) -> "Progress":
        self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._live.__exit__(*exc)
        if not self.console.is_terminal:  # off a terminal rich leaves the last line open: end it
            self.console.line()

    def on_commit(self, iteration: int, stats: LoopStats) -> None:
        now = time.perf_counter()
        self._latest = max(self._latest, iteration)
        if now - self._last < 0.12 and self._latest < self.total:
            return
        self._last = now
        self._live.update(self._render(self._latest, stats, now))

    def _render(self, iteration: int, stats: LoopStats, now: float) -> Table:
        rate = (stats.evaluated - stats.replayed) / max(now - self._t0, 1e-9)   # this process's evaluations
        t = Table.grid(padding=(0, 2))
        best = "-" if stats.best_score is None else f"{stats.best_score:.4f} (program {stats.best_id})"
        fails = ", ".join(f"{k} {v}" for k, v in sorted(stats.failures.items())) or "none"
        t.add_row(Text(f"{self.run_id}", style="bold"),
                  f"iteration {iteration}/{self.total}", f"best {best}", f"{rate:.1f} evals/s")
        t.add_row("", Text(f"failures: {fails}", style="yellow" if stats.failures else "dim"), "", "")
        return t
