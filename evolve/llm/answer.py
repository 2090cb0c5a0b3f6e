"""From a model's answer to an Edit, tolerating the usual mistakes, and from recorded calls to a Proposal.

Accepted, in this order: SEARCH/REPLACE blocks (with or without ``` fences, with prose around them, with
5-9 marker characters); otherwise a full program in a fenced block (```python, or untagged); otherwise an
unfenced answer that is itself valid Python defining a function. Reasoning text (<think>...</think>) is
dropped first. Anything else is "unparseable"; an empty answer is "empty_answer".

An answer cut at max tokens keeps its complete SEARCH/REPLACE blocks: they are applied, and the proposal's
description (the program's "made by") says the answer was truncated; with no complete block it fails.

`decide` is a pure function of the recorded calls, which is what makes `adrs replay` exact: the original
run and its replay turn the same records into the same proposal or the same failure.
"""
from __future__ import annotations

import ast
import re

from evolve.search.edits import EditError, FullRewrite, SearchReplace, extract_code, parse_search_replace
from evolve.llm.client import CallRecord
from evolve.search.proposer import Edit, Proposal, ProposalFailed

_THINK = re.compile(r"<think(?:ing)?>.*?</think(?:ing)?>", re.S | re.I)
_HAS_MARKERS = re.compile(r"^\s*<{5,9}\s*SEARCH\s*$", re.M)
_OPEN_THINK = re.compile(r"<think(?:ing)?>", re.I)
_BLOCK_END = re.compile(r"^\s*>{5,9}\s*REPLACE\s*$", re.M)
RAW_CAP = 200_000   # characters of a raw answer kept with a failed attempt


class AnswerError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.message = reason, message


def parse_answer(text: str) -> Edit:
    """An Edit, or AnswerError('empty_answer' | 'unparseable')."""
    text = _THINK.sub("", text or "").strip()
    if not text:
        raise AnswerError("empty_answer", "the model returned an empty answer")
    if _HAS_MARKERS.search(text):
        try:
            return SearchReplace(tuple(parse_search_replace(text)))
        except EditError as e:
            raise AnswerError("unparseable", e.message) from None
    try:
        return FullRewrite(extract_code(text))
    except EditError:
        pass
    if _is_program(text):
        return FullRewrite(text + "\n")
    raise AnswerError("unparseable", "no SEARCH/REPLACE block and no ```python program in the answer: "
                      + _preview(text))


def _is_program(text: str) -> bool:
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return False
    return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in tree.body)


def _preview(text: str, limit: int = 80) -> str:
    one = " ".join(text.split())
    return repr(one if len(one) <= limit else one[: limit - 3] + "...")


def complete_blocks(text: str) -> SearchReplace | None:
    """The SEARCH/REPLACE blocks of a truncated answer that end before the cut, or None."""
    text = _THINK.sub("", text or "")
    ends = list(_BLOCK_END.finditer(text))
    if not ends or _OPEN_THINK.search(text):  # cut while still thinking: those blocks were drafts
        return None
    try:
        edit = parse_answer(text[: ends[-1].end()])
    except AnswerError:
        return None
    return edit if isinstance(edit, SearchReplace) else None


def describe(edit: Edit) -> str:
    if isinstance(edit, SearchReplace):
        n = len(edit.blocks)
        return f"{n} SEARCH/REPLACE block{'s' if n != 1 else ''}"
    return "full rewrite"


def decide(records: list[CallRecord]) -> Proposal:
    """The proposal the recorded calls amount to, or ProposalFailed with the raw answer.

    The last record decides: an error ends the proposal with reason llm_<kind>; an answer is parsed."""
    rows = tuple(r.row() for r in records)
    if not records:
        raise ProposalFailed("llm_error", "no model call was made", "", rows)
    last = records[-1]
    if last.kind == "truncated":
        edit = complete_blocks(last.response)
        if edit is not None:
            return Proposal(edit=edit, raw=last.response, llm_calls=rows,
                            description=f"{last.model}: {describe(edit)} (the answer was truncated at max tokens; "
                                        "its complete blocks were applied)")
    if last.error:
        n = len(records)
        raise ProposalFailed(f"llm_{last.kind}", f"{last.model}: {last.error.split(': ', 1)[-1]}"
                             + (f" (after {n} attempts)" if n > 1 else ""), last.response[:RAW_CAP], rows)
    try:
        edit = parse_answer(last.response)
    except AnswerError as e:
        raise ProposalFailed(e.reason, f"{last.model}: {e.message}", last.response[:RAW_CAP], rows) from None
    return Proposal(edit=edit, description=f"{last.model}: {describe(edit)}", raw=last.response, llm_calls=rows)
