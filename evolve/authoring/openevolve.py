"""`adrs import-openevolve`: an OpenEvolve problem folder read (openevolve_folder), its config.yaml mapped
(openevolve_config) and written as a problem of ours (openevolve_write); `adrs run` on such a folder
imports it under the runs folder first. Also: the local check that the evaluator's packages are installed."""
from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from evolve import problem as pm
from evolve.authoring.openevolve_config import Mapped, map_config
from evolve.authoring.openevolve_folder import PIP_NAMES, OpenEvolveFolder, is_openevolve_folder, read_folder
from evolve.authoring.openevolve_write import RUN_TOML, write_problem
from evolve.errors import AdrsError

IMPORTED_DIR = "imported"   # under the runs folder: where `adrs run <OpenEvolve folder>` puts the import


@dataclass(frozen=True)
class Imported:
    source: OpenEvolveFolder
    config: Mapped
    folder: Path
    files: list[Path]

    @property
    def run_config(self) -> Path:
        return self.folder / RUN_TOML


def problem_name(path: Path) -> str:
    name = re.sub(r"\W+", "_", Path(path).resolve().name).strip("_").lower()
    return name if name and not name[0].isdigit() else f"p_{name}"


def import_openevolve(src: Path, out: Path | None = None, name: str | None = None, family: str = "other") -> Imported:
    if family not in pm.FAMILIES:
        raise AdrsError(f"--family '{family}' is not one of: {', '.join(pm.FAMILIES)}")
    folder = read_folder(Path(src))
    cfg = map_config(folder.config)
    name = name or problem_name(folder.path)
    out = Path(out) if out else Path(f"{name}_adrs")
    files = write_problem(folder, cfg, out, name, family)
    pm.load(out)  # what we wrote must load (the evaluator adapter builds, the entry functions parse)
    return Imported(folder, cfg, out.resolve(), files)


def import_for_run(src: Path, runs_dir: Path) -> Imported:
    """`adrs run <OpenEvolve folder>`: import into <runs_dir>/imported/<name>-<digest of the folder's files>,
    so a changed folder gets a new import and an earlier run's problem stays as it ran."""
    folder = read_folder(Path(src))  # errors first, before anything is written
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.path.iterdir() if p.is_file()):
        digest.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    name = problem_name(folder.path)
    out = Path(runs_dir) / IMPORTED_DIR / f"{name}-{digest.hexdigest()[:10]}"
    if (out / "problem.toml").is_file():
        return Imported(folder, map_config(folder.config), out.resolve(), sorted(out.iterdir()))
    return import_openevolve(folder.path, out, name)


def missing_local_packages(spec: pm.ProblemSpec) -> list[str]:
    """The modules an imported evaluator needs that this Python (the local sandbox's) cannot import."""
    if spec.evaluator.module != "evaluators.openevolve":
        return []
    modules = spec.evaluator.params.get("modules", [])
    return [m for m in modules if importlib.util.find_spec(m) is None]


def check_local_packages(spec: pm.ProblemSpec, sandbox: str) -> None:
    """Before a local-sandbox run or eval: a missing package is one clear error naming it, not a failure on
    every program."""
    missing = missing_local_packages(spec) if sandbox == "local" else []
    if missing:
        raise AdrsError(f"{spec.name}: the evaluator imports {', '.join(missing)}, not installed in this Python "
                        f"(the local sandbox runs it): pip install {' '.join(PIP_NAMES.get(m, m) for m in missing)}; or "
                        f"use --sandbox docker after `adrs sandbox build --problem {spec.directory}`")


__all__ = ["Imported", "import_openevolve", "import_for_run", "is_openevolve_folder", "check_local_packages"]
