"""Proposers turn a parent (and inspirations) into an edit. The controller only sees this interface.

The offline mutator is the proposer when no LLM is configured; the LLM proposer (litellm) plugs in here.
A proposer must draw all randomness from the generator it is given, so a run can be repeated exactly.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol, Union

import numpy as np

from evolve.search.edits import FullRewrite, SearchReplace
from evolve.terms import FAILURE_REASONS
from evolve.search.mutator import MutationError, OfflineMutator

Edit = Union[SearchReplace, FullRewrite]


@dataclass(frozen=True)
class ProgramView:
    id: int
    source: str
    score: float | None
    metrics: dict[str, float] = field(default_factory=dict)          # train means, for prompts
    workload_metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # workload -> metric -> value
    artifacts: dict[str, str] = field(default_factory=dict)          # stderr, traceback, ... (capped)
    feedback: dict[str, str] = field(default_factory=dict)           # workload -> the evaluator's words


@dataclass(frozen=True)
class ProposalContext:
    iteration: int
    island: int
    parent: ProgramView
    inspirations: tuple[ProgramView, ...]
    rng: np.random.Generator
    lag: int = 1                                  # outcomes of iterations <= iteration - lag are committed
    failures: tuple[tuple[str, str], ...] = ()    # recent failed attempts on this parent: (reason, message)


@dataclass(frozen=True)
class Proposal:
    edit: Edit
    description: str
    raw: str = ""                          # the proposer's raw output (diff text, model answer)
    llm_calls: tuple[dict, ...] = ()       # rows for the llm_calls table


class ProposalFailed(Exception):
    def __init__(self, reason: str, message: str, raw: str = "", llm_calls: tuple[dict, ...] = ()) -> None:
        if reason not in FAILURE_REASONS:  # a replayed failure may carry any recorded reason
            raise ValueError(f"unknown proposal failure reason {reason!r}")
        super().__init__(f"{reason}: {message}")
        self.reason, self.message, self.raw, self.llm_calls = reason, message, raw, llm_calls


class Proposer(Protocol):
    """Makes one edit of a parent program per call; raises ProposalFailed when it cannot."""

    #: recorded with every attempt (e.g. "offline-mutator", "llm")
    name: str
    #: whether the controller should fill the parent's metrics, artifacts, feedback and recent failures
    #: into the context (prompts use them; blind mutation does not, and skips the store reads)
    wants_feedback: bool = False

    async def propose(self, ctx: ProposalContext) -> Proposal: ...

    def stop_reason(self) -> str:
        """Why the run should stop launching proposals (e.g. the LLM budget is spent), or "" to go on.
        Subclasses of Proposer inherit this default."""
        return ""


class MutatorProposer(Proposer):
    """Blind AST mutations of the EVOLVE-BLOCK; cheap enough to run inline on the event loop."""

    name = "offline-mutator"

    def __init__(self) -> None:
        self._mutator = OfflineMutator()

    async def propose(self, ctx: ProposalContext) -> Proposal:
        try:
            m = self._mutator.propose(ctx.parent.source, [p.source for p in ctx.inspirations], ctx.rng)
        except MutationError as e:
            raise ProposalFailed("mutation_failed", str(e)) from None
        await asyncio.sleep(0)  # yield so evaluations keep flowing
        return Proposal(edit=FullRewrite(m.source), description=m.description)
