"""The problem's own programs (the initial program and every baseline) scored once per problem version,
shared by every run that writes under the same runs folder.

Their source, workloads and verifier do not change between runs of the same problem version, so neither do
their results (their deterministic metrics; see below for noisy ones). Scoring them anew in every run was
most of a short run's time: EPLB's five baselines took about 10 s, the initial program about 2.5 s.

The key is a digest of everything that decides a result: the problem folder (spec, initial program,
baselines, evaluator when it lives there), the whole evaluators/ tree and sandbox/ (simulators and the
runner, shared by many problems, so any change there invalidates every entry: conservative by design),
adrs's version, the sandbox kind, the program's source, and the stages. Only scorecards that came out `ok`
are kept; a failure is always measured again. Evolved programs are never served from here: their scores
are what a run (and `adrs replay`) is there to measure.

Noisy metrics (measured time, a time-limited solver's answer) are cached with the rest, so runs compare
against the same reference figures; `adrs run --fresh-baselines` measures them again and refreshes the
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

from evaluators.base import WorkloadResult
from evolve import __version__
from evolve.problem import ProblemSpec
from evolve.run.scoring import Scorecard
from evolve.terms import Status

REPO = Path(__file__).resolve().parents[2]
CODE_TREES = ("evaluators", "sandbox")   # the trusted code every problem's result depends on
FORMAT = 2                               # 2: scorecards of the initial program and baselines (1: baselines)
FOLDER = ".cache/reference"              # under the runs folder


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


class ReferenceCache:
    """get/put the Scorecard of one of the problem's own programs by (problem digest, source, stages)."""

    def __init__(self, folder: Path, digest: str, read: bool = True) -> None:
        self.folder, self.digest, self.read = Path(folder), digest, read
        self.hits: list[str] = []   # what was served from the cache in this run, by label, in order

    @classmethod
    def for_run(cls, runs_dir: str | Path, spec: ProblemSpec, sandbox: str, read: bool = True) -> "ReferenceCache":
        """`read=False` (--fresh-baselines): measure everything again, and refresh the entries."""
        return cls(Path(runs_dir) / FOLDER, problem_digest(spec, sandbox), read)

    def get(self, label: str, source: str, stages: list) -> Scorecard | None:
        """The cached scorecard, with `cached` set to when it was measured; None on any doubt."""
        if not self.read:
            return None
        try:
            entry = json.loads(self._path(source, stages).read_text())
            if entry["source"] != source or entry["digest"] != self.digest:
                return None
            out = _scorecard(entry["scorecard"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None   # absent, or unreadable (a crash mid-write cannot cause this, a hand edit can)
        if out.status != Status.OK:
            return None
        out.cached = str(entry.get("created", "?"))
        self.hits.append(label)
        return out

    def put(self, source: str, stages: list, out: Scorecard) -> None:
        if out.status != Status.OK or out.cached:
            return
        path = self._path(source, stages)
        entry = {"format": FORMAT, "created": time.strftime("%Y-%m-%d %H:%M:%S"), "digest": self.digest,
                 "source": source, "scorecard": dataclasses.asdict(out)}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "w") as f:
                json.dump(entry, f)
            os.replace(tmp, path)
        except OSError:
            pass   # a read-only runs folder: the run goes on, measuring each time

    def _path(self, source: str, stages: list) -> Path:
        key = hashlib.sha256(json.dumps([self.digest, source, [[s, list(w)] for s, w in stages]]).encode())
        return self.folder / f"{key.hexdigest()}.json"


def cached_origin(origin: str, out: Scorecard) -> str:
    """A program's `origin` ("initial program", "baseline baselines/x.py"), saying when it came from here."""
    return f"{origin} (cached {out.cached})" if out.cached else origin


def _scorecard(d: dict) -> Scorecard:
    results = {split: [WorkloadResult(**r) for r in rs] for split, rs in d["results"].items()}
    return Scorecard(status=Status(d["status"]), stage=str(d["stage"]), reason=str(d["reason"]),
                     message=str(d["message"]), results=results, artifacts=dict(d["artifacts"]),
                     duration_s=float(d["duration_s"]))
