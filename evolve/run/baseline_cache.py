"""Baselines scored once per problem version, shared by every run that writes under the same runs folder.

A baseline's source, workloads and verifier do not change between runs of the same problem version, so its
train and held-out results do not either (their deterministic metrics; see below for noisy ones). Scoring
them anew at the end of every run was most of a short run's time (EPLB's five baselines: about 10 s).

The key is a digest of everything that decides a baseline's result: the problem folder (spec, baselines,
evaluator when it lives there), the whole evaluators/ tree and sandbox/ (simulators and the runner, shared by
many problems, so any change there invalidates every entry: conservative by design), adrs's version, the
sandbox kind, the baseline's name and source, and the stages. Only results that scored `ok` are kept; a
failure is always measured again.

Noisy metrics (measured time, a time-limited solver's answer) are cached with the rest, so runs compare
against the same baseline figures; `adrs run --fresh-baselines` measures them again and refreshes the
entries. Entries are JSON (never pickle: a shared folder must not be able to run code here), written to a
temporary file and renamed, so concurrent runs never read half an entry; an unreadable entry is a miss.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from evolve import __version__
from evolve.problem import ProblemSpec
from evolve.store import FeedbackRow, MetricRow, NewProgram
from evolve.terms import Status

REPO = Path(__file__).resolve().parents[2]
CODE_TREES = ("evaluators", "sandbox")   # the trusted code every problem's result depends on
FORMAT = 1
FOLDER = ".cache/baselines"              # under the runs folder


def problem_digest(spec: ProblemSpec, sandbox: str) -> str:
    """What decides any program's result on this problem, as one sha256."""
    h = hashlib.sha256(f"adrs {__version__} sandbox {sandbox} format {FORMAT}".encode())
    for root in (spec.directory, *(REPO / t for t in CODE_TREES)):
        for path in sorted(_files(Path(root))):
            h.update(str(path.relative_to(root)).encode() + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]


class BaselineCache:
    """get/put a baseline's scored NewProgram by (problem digest, name, source, stages)."""

    def __init__(self, folder: Path, digest: str, read: bool = True) -> None:
        self.folder, self.digest, self.read = Path(folder), digest, read
        self.hits: list[str] = []   # baselines served from the cache in this run, by name

    @classmethod
    def for_run(cls, runs_dir: str | Path, spec: ProblemSpec, sandbox: str, read: bool = True) -> "BaselineCache":
        """`read=False` (--fresh-baselines): measure every baseline again, and refresh the entries."""
        return cls(Path(runs_dir) / FOLDER, problem_digest(spec, sandbox), read)

    def get(self, name: str, source: str, stages: list) -> NewProgram | None:
        if not self.read:
            return None
        try:
            entry = json.loads(self._path(name, source, stages).read_text())
            program = _program(entry["program"])
        except (OSError, ValueError, KeyError, TypeError):
            return None   # absent, or unreadable (a crash mid-write cannot cause this, a hand edit can)
        if program.name != name or program.source != source or program.status != Status.OK:
            return None
        self.hits.append(name)
        return dataclasses.replace(program, origin=f"{program.origin} (cached {entry.get('created', '?')})")

    def put(self, name: str, source: str, stages: list, program: NewProgram) -> None:
        if program.status != Status.OK:
            return
        path = self._path(name, source, stages)
        entry = {"format": FORMAT, "created": time.strftime("%Y-%m-%d %H:%M:%S"), "problem_digest": self.digest,
                 "program": dataclasses.asdict(program)}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "w") as f:
                json.dump(entry, f)
            os.replace(tmp, path)
        except OSError:
            pass   # a read-only runs folder: the run goes on, measuring baselines each time

    def _path(self, name: str, source: str, stages: list) -> Path:
        key = hashlib.sha256(json.dumps([self.digest, name, source, [[s, list(w)] for s, w in stages]]).encode())
        return self.folder / f"{key.hexdigest()}.json"


def _program(d: dict) -> NewProgram:
    fields = {f.name for f in dataclasses.fields(NewProgram)}
    p = NewProgram(**{k: v for k, v in d.items() if k in fields})
    p.metrics = [MetricRow(**m) for m in p.metrics]
    p.feedback = [FeedbackRow(**f) for f in p.feedback]
    return p
