"""`adrs doctor`'s model check: send a real edit task, and check that the answer becomes an edit that applies.

"It answers" is not enough: a model that answers with nothing, with prose, or whose prompt does not fit its
context window fails every proposal of a run. So the check sends either the run's first prompt (the
problem's initial program, as iteration 1 would see it, less the scores it does not have yet) or, with no
problem, a short edit task of the same form; it goes through the same client, answer parser and edit
application as a run, and reports speed (tokens per second) and the context window it found.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evolve.llm.answer import decide, describe
from evolve.llm.client import LlmClient, fit_answer
from evolve.llm.failures import advice
from evolve.llm.limits import ModelLimits
from evolve.problem import ProblemSpec
from evolve.search.edits import EditError, apply_edit
from evolve.search.proposer import ProgramView, ProposalContext, ProposalFailed

TASK_PROGRAM = "import math\n\n\ndef area(radius):\n    return 3 * radius * radius\n"
TASK = """Here is a Python program:
```python
{program}```
Make area() exact: use math.pi instead of 3. Answer with one SEARCH/REPLACE block and nothing else:

<<<<<<< SEARCH
the exact lines to replace, copied from the program
=======
the new lines
>>>>>>> REPLACE
"""


@dataclass(frozen=True)
class EditTask:
    what: str                 # shown in the report
    messages: list[dict]
    source: str               # the program the answer must edit


def short_task() -> EditTask:
    return EditTask("a short edit task", [{"role": "user", "content": TASK.format(program=TASK_PROGRAM)}],
                    TASK_PROGRAM)


def first_prompt(spec: ProblemSpec) -> EditTask:
    """The prompt of a run's first iteration: the initial program as parent, nothing else in the archive."""
    from evolve.llm.prompt import PromptBuilder
    source = spec.initial_source()
    ctx = ProposalContext(iteration=1, island=0, parent=ProgramView(1, source, None), inspirations=(),
                          rng=np.random.default_rng(0))
    return EditTask(f"{spec.name}'s first prompt", PromptBuilder.for_problem(spec).messages(ctx, "diff"), source)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    detail: str


async def check_model(client: LlmClient, model: str, task: EditTask, keys: str) -> Verdict:
    lim = client.limits(model)
    prompt_tokens = client.count_tokens(model, task.messages)
    window = _window(lim, prompt_tokens)
    _, refused = fit_answer(lim, prompt_tokens)
    if refused:
        return Verdict(False, f"{task.what}: {refused} -> {advice('context_window')}")
    records = await client.complete(model, task.messages, np.random.default_rng(0))
    last = records[-1]
    speed = (f"{last.completion_tokens / last.latency_s:.1f} tokens/s"
             if last.latency_s > 0 and last.completion_tokens else "speed unknown")
    try:
        proposal = decide(records)
        apply_edit(task.source, proposal.edit)
    except ProposalFailed as e:
        kind = e.reason.removeprefix("llm_")
        return Verdict(False, f"{task.what}: {e.reason}: {e.message[:200]} -> {advice(kind, keys)}")
    except EditError as e:
        return Verdict(False, f"{task.what}: the answer's edit does not apply ({e.reason}: {e.message[:160]}) "
                              "-> a model this weak wastes most proposals; try a stronger one")
    cost = "price unknown" if last.cost_usd is None else f"${last.cost_usd:.6f}"
    cut = " (answer truncated at max tokens)" if last.kind == "truncated" else ""
    return Verdict(True, f"{task.what}: answered in {last.latency_s:.1f} s with {describe(proposal.edit)} that "
                         f"applies{cut}; {speed} ({last.prompt_tokens:,}+{last.completion_tokens:,} tokens, {cost}); "
                         f"{window}")


def _window(lim: ModelLimits, prompt_tokens: int) -> str:
    if not lim.context_window:
        return (f"context window unknown (prompt ~{prompt_tokens:,} tokens; max tokens {lim.max_tokens:,}, "
                f"timeout {lim.timeout_s:.0f} s)")
    where = "from the server" if lim.source == "server" else "from litellm"
    return (f"context window {lim.context_window:,} tokens {where} (prompt ~{prompt_tokens:,}; max tokens "
            f"{lim.max_tokens:,}, timeout {lim.timeout_s:.0f} s)")
