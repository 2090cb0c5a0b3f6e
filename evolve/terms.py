"""The closed sets of words the lineage records: statuses, splits, program kinds, stages, failure reasons.

Each is a str enum, so a member is stored, compared, printed and serialised as its plain value ("ok",
"held-out"): rows written before these enums existed read back equal, and a lineage stays byte-identical.
Failure reasons come from four places (the sandbox, scoring, edits, proposers); FAILURE_REASONS is their
union, which the report and `adrs show` group by.
"""
from __future__ import annotations

from sandbox.base import Reason as CandidateReason, Word


class Status(Word):
    OK = "ok"
    FAILED = "failed"


class Split(Word):
    QUICK = "quick"        # the cascade's cheap first check
    TRAIN = "train"        # steers the search
    HELD_OUT = "held-out"  # touched only by the final scoring


class ProgramKind(Word):
    INITIAL = "initial"
    CHILD = "child"
    BASELINE = "baseline"


class Stage(Word):
    """Where an attempt ended: before scoring, or the last split it reached."""

    PROPOSE = "propose"
    EDIT = "edit"
    QUICK = "quick"
    TRAIN = "train"


class ScoringReason(Word):
    """Failures found on the trusted side while scoring (the sandbox's own are CandidateReason)."""

    INVALID_OUTPUT = "invalid_output"    # the candidate answered, against the problem's rules
    EVALUATOR_ERROR = "evaluator_error"  # a bug in the trusted evaluator: recorded, never blamed on the program


class EditReason(Word):
    NO_BLOCKS = "no_blocks"
    NO_MATCH = "no_match"
    AMBIGUOUS_MATCH = "ambiguous_match"
    OUTSIDE_EVOLVE_BLOCK = "outside_evolve_block"
    SYNTAX_ERROR = "syntax_error"
    EMPTY = "empty"
    NO_CHANGE = "no_change"


class ProposalReason(Word):
    """Why no edit came out of a proposer (the LLM client's error kinds appear as llm_<kind>)."""

    EMPTY_ANSWER = "empty_answer"
    UNPARSEABLE = "unparseable"
    MUTATION_FAILED = "mutation_failed"
    PROPOSER_ERROR = "proposer_error"    # a bug in a proposer: recorded, the run goes on
    REPLAY_MISSING = "replay_missing"
    LLM_ERROR = "llm_error"
    LLM_TIMEOUT = "llm_timeout"
    LLM_RATE_LIMITED = "llm_rate_limited"
    LLM_SERVER_ERROR = "llm_server_error"
    LLM_CONNECTION_ERROR = "llm_connection_error"
    LLM_TRUNCATED = "llm_truncated"
    LLM_AUTH_ERROR = "llm_auth_error"
    LLM_BAD_REQUEST = "llm_bad_request"
    LLM_CONTEXT_WINDOW = "llm_context_window"
    LLM_NOT_FOUND = "llm_not_found"


FAILURE_REASONS: frozenset[str] = frozenset(
    str(m) for group in (CandidateReason, ScoringReason, EditReason, ProposalReason) for m in group)
