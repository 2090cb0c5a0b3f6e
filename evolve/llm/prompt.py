"""Prompts for the LLM proposer, built from the problem and what the store knows about the parent.

Templates are plain text (string.Template, `$name`) in evolve/llm/templates/; a problem overrides any of them
with a file of the same name in problems/<name>/prompts/. Every variable part is capped, so a prompt stays
bounded however long the run gets: the problem text, each program's code, the metric table, the evaluator's
words per workload, artifact tails, the number of inspirations and of recent failures. The evaluator's words
(trusted) and the program's own output (stdout, stderr: untrusted) are shown under separate headings.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path

from evolve.search.edits import EditError, evolve_regions
from evolve.problem import ProblemSpec
from evolve.search.proposer import ProgramView, ProposalContext

TEMPLATES = ("system", "context", "diff", "rewrite", "crossover")
MODES = ("diff", "rewrite", "crossover")
BUILTIN_DIR = Path(__file__).parent / "templates"

PROBLEM_CAP = 8000         # characters of the problem statement
CODE_CAP = 20000           # characters of the parent's code (kept whole up to this)
INSPIRATION_CAP = 4000     # characters of each inspiration's evolvable code
MAX_INSPIRATIONS = 3
MAX_WORKLOADS = 12         # rows of the per-workload metric table
MAX_METRICS = 6            # columns of it
NOTE_CAP = 600             # characters of the evaluator's words about one workload
ARTIFACT_TAIL = 1500       # last characters of each artifact (stderr, traceback, ...)
MAX_ARTIFACTS = 3
FAILURE_CAP = 300          # characters of each recent failure message


def load_templates(problem_dir: Path) -> dict[str, string.Template]:
    override = problem_dir / "prompts"
    out = {}
    for name in TEMPLATES:
        path = override / f"{name}.txt"
        out[name] = string.Template((path if path.is_file() else BUILTIN_DIR / f"{name}.txt").read_text())
    return out


def _cap_head(text: str, cap: int) -> str:
    return text if len(text) <= cap else text[:cap] + f"\n[... {len(text) - cap} characters cut ...]"


def _cap_tail(text: str, cap: int) -> str:
    return text if len(text) <= cap else f"[... {len(text) - cap} characters cut ...]\n" + text[-cap:]


def _score(p: ProgramView) -> str:
    return "not scored" if p.score is None else f"score {p.score:.6g}"


def evolvable_part(source: str) -> str:
    """Only the EVOLVE-BLOCK regions of a program (all of it when it has none)."""
    try:
        spans = evolve_regions(source)
    except EditError:
        return source
    lines = source.splitlines(keepends=True)
    return "\n# ...\n".join("".join(lines[a:b]).rstrip("\n") for a, b in spans)


def metric_table(p: ProgramView) -> str:
    if not p.workload_metrics:
        return ""
    names = sorted({k for d in p.workload_metrics.values() for k in d})[:MAX_METRICS]
    rows = ["| workload | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for wl in sorted(p.workload_metrics)[:MAX_WORKLOADS]:
        vals = p.workload_metrics[wl]
        rows.append(f"| {wl} | " + " | ".join(f"{vals[n]:.5g}" if n in vals else "-" for n in names) + " |")
    if len(p.workload_metrics) > MAX_WORKLOADS:
        rows.append(f"({len(p.workload_metrics) - MAX_WORKLOADS} more workloads not shown)")
    return "Per-workload metrics of the current program:\n" + "\n".join(rows) + "\n"


def evaluator_notes(p: ProgramView) -> str:
    """The trusted evaluator's diagnosis per train workload, one line each (never the program's output)."""
    notes = [(wl, " ".join(p.feedback[wl].split())) for wl in sorted(p.feedback)]
    notes = [(wl, text) for wl, text in notes if text]
    if not notes:
        return ""
    lines = [f"- {wl}: {_cap_head(text, NOTE_CAP)}" for wl, text in notes[:MAX_WORKLOADS]]
    if len(notes) > MAX_WORKLOADS:
        lines.append(f"({len(notes) - MAX_WORKLOADS} more workloads not shown)")
    return "What the evaluator observed (trusted, per workload):\n" + "\n".join(lines) + "\n"


def feedback(ctx: ProposalContext) -> str:
    parts = [metric_table(ctx.parent), evaluator_notes(ctx.parent)]
    for name, text in list(ctx.parent.artifacts.items())[:MAX_ARTIFACTS]:
        if text.strip():
            parts.append(f"Its {name} (tail, printed by the program itself):\n"
                         f"```\n{_cap_tail(text.rstrip(), ARTIFACT_TAIL)}\n```\n")
    if ctx.failures:
        lines = [f"- {reason}: {_cap_head(' '.join(msg.split()), FAILURE_CAP)}" for reason, msg in ctx.failures]
        parts.append("Recent changes to this program that failed:\n" + "\n".join(lines) + "\n")
    return "\n".join(p for p in parts if p)


def inspirations(views: tuple[ProgramView, ...]) -> str:
    if not views:
        return ""
    out = ["# Other programs of this run (for ideas; evolvable part only)\n"]
    for p in views[:MAX_INSPIRATIONS]:
        code = _cap_head(evolvable_part(p.source), INSPIRATION_CAP)
        out.append(f"## Program {p.id} ({_score(p)})\n```python\n{code}\n```\n")
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class PromptBuilder:
    spec: ProblemSpec
    templates: dict[str, string.Template]
    problem_text: str

    @staticmethod
    def for_problem(spec: ProblemSpec) -> "PromptBuilder":
        path = spec.directory / spec.prompt
        text = path.read_text() if path.is_file() else spec.description
        return PromptBuilder(spec, load_templates(spec.directory), _cap_head(text.strip(), PROBLEM_CAP))

    def messages(self, ctx: ProposalContext, mode: str, other: ProgramView | None = None) -> list[dict]:
        """System and user messages for one proposal; `other` is the second parent of a crossover."""
        if mode not in MODES:
            raise ValueError(f"unknown prompt mode {mode!r}")
        obj = self.spec.objective
        values = {
            "entry_points": entry_points(self.spec),
            "signature": self.spec.entry.functions[0].signature or f"{self.spec.entry.function}()",  # older overrides
            "problem": self.problem_text,
            "score_metric": obj.score,
            "metrics": ", ".join(f"{k} ({'higher' if v == 'max' else 'lower'} is better)"
                                 for k, v in obj.metrics.items()),
            "inspirations": inspirations(ctx.inspirations if mode != "crossover" else ()),
            "parent_id": str(ctx.parent.id),
            "parent_score": _score(ctx.parent),
            "parent_code": _cap_head(ctx.parent.source.rstrip("\n"), CODE_CAP),
            "parent_feedback": feedback(ctx),
        }
        if other is not None:
            values.update(other_id=str(other.id), other_score=_score(other),
                          other_code=_cap_head(other.source.rstrip("\n"), CODE_CAP))
        t = self.templates
        system = t["system"].safe_substitute(values).strip()
        user = t["context"].safe_substitute(values).rstrip() + "\n\n" + t[mode].safe_substitute(values).strip()
        return [{"role": "system", "content": system}, {"role": "user", "content": user + "\n"}]


def entry_points(spec: ProblemSpec) -> str:
    """Every function the evaluator calls, with its meaning: the candidate must keep all of them."""
    fns = spec.entry.functions
    if len(fns) == 1:
        return f"The entry point {fns[0].describe()} must keep working."
    listed = "\n".join(f"- {f.describe()}" for f in fns)
    return f"The evaluator calls these entry points, which must all keep working:\n{listed}\n"
