"""The LLM proposer: choose a model and a prompt mode, call the model, turn the answer into an edit.

Randomness (model, mode, second parent, backoff jitter) comes only from the iteration's generator, in a
fixed order, and the ensemble only reads outcomes up to iteration - lag, so with recorded answers the
choices replay exactly. Every HTTP attempt travels with the proposal (or its failure) as an llm_calls row.
"""
from __future__ import annotations

import numpy as np

from evolve.llm.answer import decide
from evolve.config import RunConfig
from evolve.llm.ensemble import Ensemble, catch_up
from evolve.llm.failures import RepeatWatch
from evolve.llm.client import ClientSettings, LlmClient
from evolve.problem import ProblemSpec
from evolve.llm.prompt import MODES, PromptBuilder
from evolve.search.proposer import ProgramView, Proposal, ProposalContext, Proposer
from evolve.store import Store
from evolve.terms import Status


def client_settings(cfg: RunConfig) -> ClientSettings:
    return ClientSettings(api_base=cfg.api_base, timeout_s=cfg.llm_timeout_s, attempts=cfg.llm_attempts,
                          backoff_s=cfg.llm_backoff_s, max_tokens=cfg.llm_max_tokens,
                          temperature=cfg.temperature)


def spent_usd(store: Store, run_id: str) -> float:
    """Known dollars already spent by a run (for budgets that survive resume)."""
    return store.spent_usd(run_id)


class LlmProposer(Proposer):
    name = "llm"
    wants_feedback = True   # the controller fills metrics, artifacts and recent failures of the parent

    def __init__(self, cfg: RunConfig, spec: ProblemSpec, store: Store, run_id: str,
                 client: LlmClient | None = None) -> None:
        if not cfg.models:
            raise ValueError("LlmProposer needs at least one model")
        self.cfg, self.store, self.run_id = cfg, store, run_id
        self.ensemble = Ensemble.from_specs(cfg.models, cfg.ensemble)
        self.prompts = PromptBuilder.for_problem(spec)
        self.client = client or LlmClient(client_settings(cfg))
        self._spent_before = spent_usd(store, run_id)
        self.repeats = RepeatWatch(cfg.llm_max_repeated_failures)
        for model in self.ensemble.models:  # ask a local server its context size now, not in the loop
            self.client.limits(model)
        ratios = np.array([cfg.diff_ratio, cfg.rewrite_ratio, cfg.crossover_ratio], dtype=float)
        self._mode_p = ratios / ratios.sum()

    # -- budget ---------------------------------------------------------------------------------------
    @property
    def spent(self) -> float:
        return self._spent_before + self.client.spent_usd

    def stop_reason(self) -> str:
        """A controller stop hook: no new proposals once the cost budget is spent, or once the same failure
        has repeated llm_max_repeated_failures times (a setup error: see evolve/llm/failures.py)."""
        if self.cfg.max_cost and self.spent >= self.cfg.max_cost:
            return "max_cost"
        return self.repeats.stop_reason()

    def observe(self, attempt) -> None:
        """Called by the controller with each committed attempt, in iteration order."""
        self.repeats.observe(attempt.reason if attempt.status == Status.FAILED else "", attempt.message)

    # -- one proposal ---------------------------------------------------------------------------------
    def choose(self, ctx: ProposalContext) -> tuple[str, str, ProgramView | None]:
        """(model, mode, second parent) for an iteration; draws from ctx.rng in a fixed order."""
        upto = ctx.iteration - ctx.lag
        catch_up(self.ensemble, self.store, self.run_id, upto)
        model = self.ensemble.choose(ctx.rng, upto)
        mode = MODES[int(ctx.rng.choice(len(MODES), p=self._mode_p))]
        other = None
        if mode == "crossover":
            if ctx.inspirations:
                other = ctx.inspirations[int(ctx.rng.integers(len(ctx.inspirations)))]
            else:
                mode = "diff"  # nothing to cross with yet
        return model, mode, other

    async def propose(self, ctx: ProposalContext) -> Proposal:
        model, mode, other = self.choose(ctx)
        messages = self.prompts.messages(ctx, mode, other)
        records = await self.client.complete(model, messages, ctx.rng)
        return decide(records)


def make_proposer(cfg: RunConfig, spec: ProblemSpec, store: Store, run_id: str) -> LlmProposer | None:
    """The LLM proposer when the run config names models, else None (the offline mutator proposes)."""
    return LlmProposer(cfg, spec, store, run_id) if cfg.models else None
