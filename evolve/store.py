"""The lineage store: every run, program, evaluation, attempt, artifact and LLM call (SQLAlchemy 2 ORM).

Append-only: rows are inserted, never updated (a run's status is the latest of its events). One iteration
is committed in one transaction, so a killed run leaves either all of an iteration or none of it.
SQLite (the default) runs in WAL mode; any SQLAlchemy URL works (PostgreSQL for shared stores).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from sqlalchemy import (Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, create_engine,
                        event, inspect, insert, select, func)
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from evolve.errors import AdrsError

SCHEMA_VERSION = 1


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Marks a database as an adrs lineage store and records its schema version."""
    __tablename__ = "adrs_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    problem: Mapped[str] = mapped_column(String(256))
    problem_dir: Mapped[str] = mapped_column(Text)
    seed: Mapped[int] = mapped_column(Integer)
    config: Mapped[str] = mapped_column(Text)          # the validated RunConfig, as JSON
    sandbox: Mapped[str] = mapped_column(String(32))
    isolation: Mapped[str] = mapped_column(Text)       # what the sandbox could enforce here, as JSON
    versions: Mapped[str] = mapped_column(Text)        # adrs, python, numpy, sqlalchemy
    created_at: Mapped[float] = mapped_column(Float)


class RunEvent(Base):
    __tablename__ = "run_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))      # started, resumed, interrupted, finished, ...
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[float] = mapped_column(Float)


class Program(Base):
    __tablename__ = "programs"
    __table_args__ = (UniqueConstraint("run_id", "iteration"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    iteration: Mapped[Optional[int]] = mapped_column(Integer)   # None for baselines
    kind: Mapped[str] = mapped_column(String(16))               # initial, child, baseline
    name: Mapped[str] = mapped_column(String(128), default="")  # baseline name
    parent_id: Mapped[Optional[int]] = mapped_column(ForeignKey("programs.id"))
    island: Mapped[int] = mapped_column(Integer, default=0)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(Text)
    diff: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))             # ok, failed
    reason: Mapped[str] = mapped_column(String(64), default="")
    score: Mapped[Optional[float]] = mapped_column(Float)       # mean train score; None if failed
    origin: Mapped[str] = mapped_column(Text, default="")       # how it was made (mutation, model)
    created_at: Mapped[float] = mapped_column(Float)


class Evaluation(Base):
    __tablename__ = "evaluations"
    __table_args__ = (Index("ix_eval_program", "program_id", "split"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    workload: Mapped[str] = mapped_column(String(256))
    split: Mapped[str] = mapped_column(String(16))              # quick, train, held-out
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    samples: Mapped[Optional[str]] = mapped_column(Text)        # JSON list of raw repeated measurements


class Attempt(Base):
    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("run_id", "iteration"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    iteration: Mapped[int] = mapped_column(Integer)
    island: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[Optional[int]] = mapped_column(ForeignKey("programs.id"))
    proposer: Mapped[str] = mapped_column(String(128))
    stage: Mapped[str] = mapped_column(String(16))              # where it ended: propose, edit, quick, train
    status: Mapped[str] = mapped_column(String(16))             # ok, failed
    reason: Mapped[str] = mapped_column(String(64), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    proposal: Mapped[str] = mapped_column(Text, default="")     # raw edit text, kept for failed edits
    program_id: Mapped[Optional[int]] = mapped_column(ForeignKey("programs.id"))
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[float] = mapped_column(Float)


class Artifact(Base):
    __tablename__ = "artifacts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[Optional[int]] = mapped_column(ForeignKey("programs.id"), index=True)
    attempt_id: Mapped[Optional[int]] = mapped_column(ForeignKey("attempts.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))               # stdout, stderr, traceback, validation
    content: Mapped[str] = mapped_column(Text)


class LlmCall(Base):
    __tablename__ = "llm_calls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    attempt_id: Mapped[Optional[int]] = mapped_column(ForeignKey("attempts.id"))
    program_id: Mapped[Optional[int]] = mapped_column(ForeignKey("programs.id"))
    model: Mapped[str] = mapped_column(String(256))
    messages: Mapped[str] = mapped_column(Text)
    response: Mapped[str] = mapped_column(Text, default="")
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[Optional[float]] = mapped_column(Float)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)


@dataclass
class MetricRow:
    workload: str
    split: str
    metric: str
    value: float
    samples: list[float] | None = None


@dataclass
class NewProgram:
    """Everything one evaluated program adds to the store."""
    kind: str
    source: str
    status: str
    iteration: int | None = None
    name: str = ""
    parent_id: int | None = None
    island: int = 0
    generation: int = 0
    diff: str = ""
    reason: str = ""
    score: float | None = None
    origin: str = ""
    metrics: list[MetricRow] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)


@dataclass
class NewAttempt:
    iteration: int
    island: int
    parent_id: int | None
    proposer: str
    stage: str
    status: str
    reason: str = ""
    message: str = ""
    proposal: str = ""
    duration_s: float = 0.0
    program: NewProgram | None = None
    artifacts: dict[str, str] = field(default_factory=dict)
    llm_calls: list[dict] = field(default_factory=list)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


class Store:
    """Open (or create) a lineage store at a SQLAlchemy URL."""

    def __init__(self, url: str, create: bool = False) -> None:
        self.url = url
        self.engine = _engine(url)
        self._check_or_create(create)

    def close(self) -> None:
        self.engine.dispose()

    # -- schema ---------------------------------------------------------------------------------------
    def _check_or_create(self, create: bool) -> None:
        try:
            tables = set(inspect(self.engine).get_table_names())
        except (DatabaseError, OperationalError) as e:
            raise AdrsError(f"{self.url}: not a database adrs can open ({_first_line(e)})") from None
        if "adrs_meta" in tables:
            with Session(self.engine) as s:
                v = s.get(Meta, "schema_version")
            if v is None or int(v.value) != SCHEMA_VERSION:
                raise AdrsError(f"{self.url}: lineage schema version {v and v.value} is not {SCHEMA_VERSION}")
            return
        if tables or not create:
            raise AdrsError(f"{self.url}: not an adrs lineage database")
        Base.metadata.create_all(self.engine)
        with Session(self.engine) as s, s.begin():
            s.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))

    # -- runs -----------------------------------------------------------------------------------------
    def create_run(self, run: Run) -> None:
        with Session(self.engine) as s, s.begin():
            s.add(run)
            s.add(RunEvent(run_id=run.id, kind="started", at=time.time()))

    def add_event(self, run_id: str, kind: str, detail: str = "") -> None:
        with Session(self.engine) as s, s.begin():
            s.add(RunEvent(run_id=run_id, kind=kind, detail=detail, at=time.time()))

    def run(self, run_id: str) -> Run:
        with Session(self.engine, expire_on_commit=False) as s:
            r = s.get(Run, run_id)
        if r is None:
            raise AdrsError(f"{self.url}: no run '{run_id}'")
        return r

    def runs(self) -> list[Run]:
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.scalars(select(Run).order_by(Run.created_at)))

    def events(self, run_id: str) -> list[RunEvent]:
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.scalars(select(RunEvent).where(RunEvent.run_id == run_id).order_by(RunEvent.id)))

    # -- writes ---------------------------------------------------------------------------------------
    def add_program(self, run_id: str, p: NewProgram) -> int:
        with Session(self.engine) as s, s.begin():
            return self._insert_program(s, run_id, p)

    def commit_attempt(self, run_id: str, a: NewAttempt) -> int | None:
        """Insert one iteration (attempt, its program, metrics, artifacts, LLM calls) atomically."""
        with Session(self.engine) as s, s.begin():
            pid = self._insert_program(s, run_id, a.program) if a.program else None
            row = Attempt(run_id=run_id, iteration=a.iteration, island=a.island, parent_id=a.parent_id,
                          proposer=a.proposer, stage=a.stage, status=a.status, reason=a.reason,
                          message=a.message, proposal=a.proposal, program_id=pid, duration_s=a.duration_s,
                          created_at=time.time())
            s.add(row)
            s.flush()
            if a.artifacts:
                s.execute(insert(Artifact), [dict(attempt_id=row.id, program_id=pid, name=k, content=v)
                                             for k, v in a.artifacts.items()])
            for call in a.llm_calls:
                s.add(LlmCall(run_id=run_id, attempt_id=row.id, program_id=pid, created_at=time.time(), **call))
            return pid

    def add_metrics(self, program_id: int, rows: Iterable[MetricRow]) -> None:
        with Session(self.engine) as s, s.begin():
            _insert_metrics(s, program_id, list(rows))

    def _insert_program(self, s: Session, run_id: str, p: NewProgram) -> int:
        row = Program(run_id=run_id, iteration=p.iteration, kind=p.kind, name=p.name, parent_id=p.parent_id,
                      island=p.island, generation=p.generation, source=p.source, diff=p.diff,
                      status=p.status, reason=p.reason, score=p.score, origin=p.origin,
                      created_at=time.time())
        s.add(row)
        s.flush()
        _insert_metrics(s, row.id, p.metrics)
        if p.artifacts:
            s.execute(insert(Artifact), [dict(program_id=row.id, name=k, content=v)
                                         for k, v in p.artifacts.items()])
        return row.id

    # -- reads ----------------------------------------------------------------------------------------
    def programs(self, run_id: str, kind: str | None = None, status: str | None = None) -> list[Program]:
        q = select(Program).where(Program.run_id == run_id)
        if kind:
            q = q.where(Program.kind == kind)
        if status:
            q = q.where(Program.status == status)
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.scalars(q.order_by(Program.id)))

    def program(self, run_id: str, program_id: int) -> Program:
        with Session(self.engine, expire_on_commit=False) as s:
            p = s.get(Program, program_id)
        if p is None or p.run_id != run_id:
            raise AdrsError(f"run '{run_id}' has no program {program_id}")
        return p

    def sources(self, ids: list[int]) -> dict[int, str]:
        with Session(self.engine) as s:
            return dict(s.execute(select(Program.id, Program.source).where(Program.id.in_(ids))).all())

    def metrics(self, program_id: int, split: str | None = None) -> list[MetricRow]:
        q = select(Evaluation).where(Evaluation.program_id == program_id)
        if split:
            q = q.where(Evaluation.split == split)
        with Session(self.engine) as s:
            return [MetricRow(e.workload, e.split, e.metric, e.value, json.loads(e.samples) if e.samples else None)
                    for e in s.scalars(q.order_by(Evaluation.id))]

    def artifacts(self, program_id: int) -> dict[str, str]:
        with Session(self.engine) as s:
            rows = s.scalars(select(Artifact).where(Artifact.program_id == program_id).order_by(Artifact.id))
            return {a.name: a.content for a in rows}

    def llm_calls(self, program_id: int) -> list[LlmCall]:
        """The LLM calls that produced a program, in the order they were made."""
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.scalars(select(LlmCall).where(LlmCall.program_id == program_id).order_by(LlmCall.id)))

    def attempts(self, run_id: str) -> list[Attempt]:
        with Session(self.engine, expire_on_commit=False) as s:
            return list(s.scalars(select(Attempt).where(Attempt.run_id == run_id).order_by(Attempt.iteration)))

    def last_iteration(self, run_id: str) -> int:
        with Session(self.engine) as s:
            v = s.scalar(select(func.max(Attempt.iteration)).where(Attempt.run_id == run_id))
        return -1 if v is None else int(v)

    def recent_failures(self, run_id: str, parent_id: int, upto_iteration: int, limit: int = 3
                        ) -> list[tuple[str, str]]:
        """(reason, message) of the latest failed attempts on a parent, up to an iteration, newest first."""
        q = (select(Attempt.reason, Attempt.message)
             .where(Attempt.run_id == run_id, Attempt.parent_id == parent_id, Attempt.status == "failed",
                    Attempt.iteration <= upto_iteration)
             .order_by(Attempt.iteration.desc()).limit(limit))
        with Session(self.engine) as s:
            return [(r, m) for r, m in s.execute(q).all()]

    def failure_counts(self, run_id: str) -> dict[str, int]:
        with Session(self.engine) as s:
            rows = s.execute(select(Attempt.reason, func.count()).where(Attempt.run_id == run_id,
                             Attempt.status == "failed").group_by(Attempt.reason)).all()
        return {r: n for r, n in sorted(rows)}


def _insert_metrics(s: Session, program_id: int, rows: list[MetricRow]) -> None:
    if rows:
        s.execute(insert(Evaluation), [dict(program_id=program_id, workload=m.workload, split=m.split,
                                            metric=m.metric, value=m.value,
                                            samples=json.dumps(m.samples) if m.samples is not None else None)
                                       for m in rows])


def _engine(url: str):
    try:
        engine = create_engine(url)
    except Exception as e:  # malformed URL, missing driver
        raise AdrsError(f"cannot open database URL '{url}': {_first_line(e)}") from None
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(conn, _record):  # WAL: readers never block the writer; NORMAL is durable in WAL
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
    return engine


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def metrics_by_program(store: Store, run_id: str, split: str) -> dict[int, list[MetricRow]]:
    """All metric rows of one split for a run, grouped by program (one query, for rebuilding the archive)."""
    q = (select(Evaluation).join(Program, Program.id == Evaluation.program_id)
         .where(Program.run_id == run_id, Evaluation.split == split).order_by(Evaluation.id))
    out: dict[int, list[MetricRow]] = {}
    with Session(store.engine) as s:
        for e in s.scalars(q):
            out.setdefault(e.program_id, []).append(MetricRow(e.workload, e.split, e.metric, e.value))
    return out
