"""Writing an imported OpenEvolve problem as a problem of ours: problem.toml (trust = "sandboxed-evaluator"),
README.md (the text the LLM sees), initial.py, the evaluator copied verbatim, and run.toml (the run settings
config.yaml maps to). The trusted side is the shared adapter evaluators/openevolve, named in problem.toml."""
from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any

from evolve.authoring.openevolve_config import Mapped
from evolve.authoring.openevolve_folder import EVALUATOR, OpenEvolveFolder
from evolve.errors import AdrsError

RUN_TOML = "run.toml"
DEFAULT_MEMORY_MB = 4096   # an evaluator and the candidate share one sandbox process
SLACK_S = 30               # a candidate's whole life beyond its evaluation calls (start, import)
DESCRIPTION_CHARS = 200


def write_problem(src: OpenEvolveFolder, cfg: Mapped, out: Path, name: str, family: str) -> list[Path]:
    """Write the problem into `out` (created; an existing problem.toml there is an error); return the files."""
    out = Path(out)
    if (out / "problem.toml").exists():
        raise AdrsError(f"{out}: already holds a problem (problem.toml); choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "problem.toml": problem_toml(src, cfg, name, family),
        "README.md": readme(src, cfg, name),
        "initial.py": src.initial,
        EVALUATOR: src.evaluator,          # verbatim: it runs only inside the sandbox
        RUN_TOML: run_toml(cfg),
    }
    written = []
    for rel, text in files.items():
        (out / rel).write_text(text)
        written.append(out / rel)
    return written


def problem_toml(src: OpenEvolveFolder, cfg: Mapped, name: str, family: str) -> str:
    stages = max(1, len(src.stages)) if cfg.cascade and src.stages else 1
    call_s = cfg.timeout_s * stages  # OpenEvolve's timeout is per stage; ours bounds the one call running them all
    functions = ",\n".join(f"  {{ name = {_s(f)}, signature = {_s(sig)}, doc = \"called by the imported evaluator\" }}"
                           for f, sig in _signatures(src.initial, src.functions))
    lines = [
        f"# Imported from the OpenEvolve problem {src.path} by `adrs import-openevolve`.",
        f"name = {_s(name)}",
        f"family = {_s(family)}",
        "# The problem's own evaluator runs inside the sandbox, beside the candidate (evaluators/openevolve):",
        "# its scores are only as honest as that evaluator, and a candidate can reach it.",
        'trust = "sandboxed-evaluator"',
        f"description = {_s(description(src, cfg, name))}",
        'prompt = "README.md"',
        "",
        "[entry]",
        'file = "initial.py"',
        f"functions = [\n{functions},\n]",
        "",
        "[evaluator]",
        'module = "evaluators.openevolve"',
        "",
        "[evaluator.params]",
        f"evaluator_file = {_s(EVALUATOR)}",
        f"cascade = {'true' if cfg.cascade else 'false'}           # evaluate_stage1..3 with thresholds (config.yaml)",
        f"thresholds = {_list(cfg.thresholds)}",
        f"modules = {_list(src.modules)}            # what the evaluator imports beyond the stdlib and numpy",
        f"functions = {_list(src.functions)}",
        "score_bound = 1e9    # |score| above this is invalid output",
        "",
        "[workloads]",
        "# OpenEvolve scores a program once: held-out runs the same evaluator again in a fresh sandbox.",
        'train = ["openevolve"]',
        'held_out = ["openevolve:held-out"]',
        "",
        "[objective]",
        'score = "score"      # combined_score, or the mean of the numeric metrics but `error` (as OpenEvolve)',
        'metrics = { score = "max", openevolve_stage = "max" }',
        "",
        "[limits]",
        f"call_timeout_s = {call_s:g}",
        f"workload_timeout_s = {call_s + SLACK_S:g}",
        f"cpu_s = {int(math.ceil(call_s)) + SLACK_S}",
        f"memory_mb = {cfg.memory_mb or DEFAULT_MEMORY_MB}",
    ]
    if src.packages:
        lines += ["", "[sandbox]", "# installed into the Docker image by `adrs sandbox build --problem <this folder>`",
                  f"packages = {_list(src.packages)}"]
    return "\n".join(lines) + "\n"


def _signatures(initial: str, names: tuple[str, ...]) -> list[tuple[str, str]]:
    defs = {n.name: n for n in ast.parse(initial).body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return [(n, f"{n}({ast.unparse(defs[n].args)})") for n in names]


def description(src: OpenEvolveFolder, cfg: Mapped, name: str) -> str:
    for text in (cfg.system_message, src.readme):
        for line in text.splitlines():
            line = line.strip().lstrip("#").strip()
            if line:
                return line[:DESCRIPTION_CHARS]
    return f"{name}: an OpenEvolve problem"


def readme(src: OpenEvolveFolder, cfg: Mapped, name: str) -> str:
    parts = [f"# {name} (an OpenEvolve problem)", ""]
    if cfg.system_message:
        parts += [cfg.system_message.strip(), ""]
    if src.readme.strip():
        parts += ["## The problem, as its authors describe it", "", src.readme.strip(), ""]
    calls = ", ".join(f"`{f}()`" for f in src.functions)
    if cfg.cascade and src.stages:
        gates = ", ".join(f"{t:g}" for t in cfg.thresholds)
        how = (f"in stages ({', '.join(src.stages)}); a stage runs only if the metrics so far reach its "
               f"threshold ({gates}: `combined_score`, else the mean of the numeric metrics)")
    else:
        how = "once, with `evaluate(program_path)`"
    parts += [
        "## What you edit and how it is scored", "",
        f"Only the code between `EVOLVE-BLOCK-START` and `EVOLVE-BLOCK-END` is evolved. The evaluator imports "
        f"your program and calls {calls}; keep their names and signatures.",
        "",
        f"The problem's evaluator (evaluator.py) runs your program {how}. The score is its `combined_score`, or "
        "the mean of its numeric metrics except `error` when it gives none; higher is better. Its other numeric "
        "metrics are kept as metrics, and its text results and artifacts come back to you as feedback.",
        "",
        "The evaluator runs in the sandbox beside your program (no network, no credentials, a time limit). "
        "Its scores are only as honest as that evaluator: there is no held-out workload beyond running it again.",
        "",
    ]
    return "\n".join(parts)


def run_toml(cfg: Mapped) -> str:
    lines = ["# Run settings mapped from config.yaml by `adrs import-openevolve`; use with `adrs run <folder> "
             "--config <folder>/run.toml` (`adrs run` on the OpenEvolve folder uses them by itself)."]
    archive = cfg.run.get("archive", {})
    for k, v in sorted(cfg.run.items()):
        if k != "archive":
            lines.append(f"{k} = {_value(v)}")
    if archive:
        lines += ["", "[archive]"] + [f"{k} = {_value(v)}" for k, v in sorted(archive.items())]
    return "\n".join(lines) + "\n"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return _list(v)
    if isinstance(v, str):
        return _s(v)
    return repr(v)


def _s(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid TOML basic string


def _list(items) -> str:
    return "[" + ", ".join(_s(x) if isinstance(x, str) else repr(float(x)) for x in items) + "]"
