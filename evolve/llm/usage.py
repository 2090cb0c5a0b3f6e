"""What a run's LLM calls cost: calls, tokens, dollars and errors per model, read from the llm_calls table."""
from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from evolve.store import Store


@dataclass
class ModelUsage:
    model: str
    calls: int = 0
    answered: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0                                   # answered calls with no known price
    errors: dict[str, int] = field(default_factory=dict)  # kind -> count (timeout, rate_limited, ...)

    @property
    def cost_known(self) -> bool:
        return self.unpriced == 0


def answered(error: str | None) -> bool:
    """The model answered (and was billed): no error, or an answer cut at max tokens."""
    return not error or error.split(":", 1)[0] == "truncated"


def cost_text(cost_usd: float, answered_calls: int, unpriced: int) -> str:
    """Dollars as the CLI and the report both say them: "unknown" when no answered call has a price
    (a local model litellm has no price for), never $0."""
    if answered_calls and unpriced == answered_calls:
        return "unknown"
    return f"${cost_usd:,.4f}" + (" + unknown" if unpriced else "")


def usage(store: Store, run_id: str) -> list[ModelUsage]:
    out: dict[str, ModelUsage] = {}
    for c in store.call_costs(run_id):
        u = out.setdefault(c.model, ModelUsage(c.model))
        u.calls += 1
        u.prompt_tokens += c.prompt_tokens or 0
        u.completion_tokens += c.completion_tokens or 0
        kind = c.error.split(":", 1)[0] if c.error else ""
        if kind:
            u.errors[kind] = u.errors.get(kind, 0) + 1
        if answered(c.error):
            u.answered += 1
            if c.cost_usd is None:
                u.unpriced += 1
            else:
                u.cost_usd += c.cost_usd
    return list(out.values())


def _cost(u: ModelUsage) -> str:
    return cost_text(u.cost_usd, u.answered, u.unpriced)


def usage_table(rows: list[ModelUsage]) -> Table:
    t = Table(title="LLM calls per model")
    for c in ("model", "calls", "answered", "prompt tokens", "completion tokens", "cost", "errors"):
        t.add_column(c, justify="left" if c in ("model", "errors") else "right")
    for u in rows:
        errs = ", ".join(f"{k} {v}" for k, v in sorted(u.errors.items())) or "-"
        t.add_row(u.model, str(u.calls), str(u.answered), f"{u.prompt_tokens:,}", f"{u.completion_tokens:,}",
                  _cost(u), errs)
    if len(rows) > 1:
        total = cost_text(sum(u.cost_usd for u in rows), sum(u.answered for u in rows),
                          sum(u.unpriced for u in rows))
        t.add_row("total", str(sum(u.calls for u in rows)), str(sum(u.answered for u in rows)),
                  f"{sum(u.prompt_tokens for u in rows):,}", f"{sum(u.completion_tokens for u in rows):,}",
                  total, "")
    return t


def print_usage(console: Console, store: Store, run_id: str) -> None:
    rows = usage(store, run_id)
    if not rows:
        return
    console.print(usage_table(rows))
    if any(not u.cost_known for u in rows):
        names = ", ".join(u.model for u in rows if not u.cost_known)
        console.print(f"cost unknown for {names}: litellm's price table has no entry (tokens are counted)")
    fails = store.failure_counts(run_id)
    if fails:
        console.print("failed attempts by reason: " + ", ".join(f"{k} {v}" for k, v in fails.items()))
