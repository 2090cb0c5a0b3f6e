"""The bridge between the trusted serving engine and a sandboxed scheduling policy.

At every decision point the engine hands `SandboxPolicy.decide` an Observation; it goes to the candidate as
plain columns (`observation_message`: scalars plus `waiting` and `running` tables of numpy arrays, about
0.1 ms a call where a list of dicts would cost milliseconds) and the answer comes back through
`Decision.from_message`, which raises InvalidOutput naming the decision, the step and the rule. The engine
then checks the decision against the serving rules (rules.py). The candidate never holds a true output
length or a future arrival: the message is built only from what the Observation exposes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from evaluators.serving.policy import Decision, Observation, observation_message
from sandbox.base import Candidate


def where(obs: Observation) -> str:
    """The engine's name for this decision point (engine.Engine.where), for error messages."""
    return f"decision {obs.decision} (step {obs.step}, t={obs.now_s:.6f} s)"


@dataclass
class SandboxPolicy:
    """A serving Policy whose decisions come from `candidate.call(function, message)`."""

    candidate: Candidate
    function: str = "schedule"
    calls: int = field(default=0, init=False)

    def decide(self, obs: Observation) -> Decision:
        self.calls += 1
        answer = self.candidate.call(self.function, observation_message(obs))
        return Decision.from_message(answer, where(obs))
