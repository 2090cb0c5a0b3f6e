"""`adrs new-problem`: write a complete, working problem to start from.

The templates (evolve/authoring/templates/<kind>/) are small problems of their own: a one-shot makespan
problem and a stateful single-server queue. Each passes `adrs check-problem`, `adrs eval` and its own test
as written, so an author changes a working problem rather than filling in blanks.
"""
from __future__ import annotations

import keyword
from pathlib import Path

from evolve.errors import AdrsError

TEMPLATES = Path(__file__).resolve().parent / "templates"
KINDS = ("oneshot", "stateful")
# template file -> where it goes in the problem folder ("{name}" is the problem's name)
LAYOUT = {
    "problem.toml": "problem.toml",
    "README.md": "README.md",
    "initial.py.txt": "initial.py",
    "evaluator.py.txt": "evaluator.py",
    "baseline.py.txt": "baselines/{baseline}.py",
    "test_problem.py.txt": "test_{name}.py",
}
BASELINE = {"oneshot": "lpt", "stateful": "sjf"}


def new_problem(name: str, kind: str = "oneshot", parent: Path | str = ".") -> Path:
    """Write the problem `name` of `kind` into `parent`/`name`; returns the folder. Never overwrites."""
    if not name.isidentifier() or keyword.iskeyword(name):
        raise AdrsError(f"problem name '{name}': use a Python identifier (letters, digits, '_'), e.g. my_cache")
    if kind not in KINDS:
        raise AdrsError(f"--kind must be one of {', '.join(KINDS)}, not '{kind}'")
    folder = Path(parent) / name
    if folder.exists():
        raise AdrsError(f"{folder} already exists; choose another name or --dir")
    values = {"name": name, "folder": str(folder), "baseline": BASELINE[kind]}
    for template, target in LAYOUT.items():
        text = (TEMPLATES / kind / template).read_text()
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        out = folder / target.format(**values)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    return folder
