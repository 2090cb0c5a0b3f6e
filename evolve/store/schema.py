"""The lineage tables (SQLAlchemy 2 typed ORM). Only evolve/store/ touches them through SQLAlchemy.

SCHEMA_VERSION is stored in adrs_meta; a store of another version is refused with a plain message instead
of failing half-way through a run. Each change of a table or column bumps it and adds the Alembic revision
that upgrades a store to it (evolve/store/migrations/versions/, `adrs db upgrade`).
Version 2: the per-workload metric table is `metrics` (was `evaluations`) and `feedback` was added.
Version 3: every text column is unbounded (PostgreSQL enforces VARCHAR lengths; SQLite never did).
Version 4: `measurements`, what `adrs verify` measured of a run's programs and baselines on a real device.
"""
from __future__ import annotations

from typing import Optional

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, UniqueConstraint
from sqlalchemy import String
from sqlalchemy import Text as _Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

SCHEMA_VERSION = 4


def _nul_safe(value, dialect):
    # PostgreSQL text cannot hold NUL (0x00), and a candidate can print one: left as it is, that would make
    # the whole iteration's commit fail. There it becomes U+FFFD; SQLite keeps text exactly.
    if value is not None and dialect.name == "postgresql" and "\x00" in value:
        return value.replace("\x00", "\ufffd")
    return value


class Text(TypeDecorator):
    """Unbounded text that every backend can store (see _nul_safe)."""
    impl = _Text
    cache_ok = True
    process_bind_param = staticmethod(_nul_safe)


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Marks a database as an adrs lineage store and records its schema version."""
    __tablename__ = "adrs_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)   # never changes: every version reads it
    value: Mapped[str] = mapped_column(Text)


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    problem: Mapped[str] = mapped_column(Text)
    problem_dir: Mapped[str] = mapped_column(Text)
    seed: Mapped[int] = mapped_column(Integer)
    config: Mapped[str] = mapped_column(Text)                     # the validated RunConfig, as JSON
    sandbox: Mapped[str] = mapped_column(Text)
    isolation: Mapped[str] = mapped_column(Text)                  # what the sandbox could enforce here, as JSON
    versions: Mapped[str] = mapped_column(Text)                   # adrs, python, numpy, sqlalchemy
    created_at: Mapped[float] = mapped_column(Float)


class RunEvent(Base):
    __tablename__ = "run_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    kind: Mapped[str] = mapped_column(Text)                       # started, resumed, interrupted, finished, ...
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[float] = mapped_column(Float)


class Program(Base):
    __tablename__ = "programs"
    __table_args__ = (UniqueConstraint("run_id", "iteration"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    iteration: Mapped[Optional[int]] = mapped_column(Integer)     # None for baselines
    kind: Mapped[str] = mapped_column(Text)                       # initial, child, baseline
    name: Mapped[str] = mapped_column(Text, default="")           # baseline name
    parent_id: Mapped[Optional[int]] = mapped_column(ForeignKey("programs.id"))
    island: Mapped[int] = mapped_column(Integer, default=0)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(Text)
    diff: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(Text)                     # ok, failed
    reason: Mapped[str] = mapped_column(Text, default="")
    score: Mapped[Optional[float]] = mapped_column(Float)         # mean train score; None if failed
    origin: Mapped[str] = mapped_column(Text, default="")         # how it was made (mutation, model)
    created_at: Mapped[float] = mapped_column(Float)


class Metric(Base):
    """One metric value of one program on one workload, computed by the trusted evaluator."""
    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metric_program", "program_id", "split"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    workload: Mapped[str] = mapped_column(Text)
    split: Mapped[str] = mapped_column(Text)                      # quick, train, held-out
    metric: Mapped[str] = mapped_column(Text)
    value: Mapped[float] = mapped_column(Float)
    samples: Mapped[Optional[str]] = mapped_column(Text)          # JSON list of raw repeated measurements


class Feedback(Base):
    """The trusted evaluator's words about one program on one workload (never candidate output)."""
    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_program", "program_id", "split"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    split: Mapped[str] = mapped_column(Text)
    workload: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)


class Attempt(Base):
    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("run_id", "iteration"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    iteration: Mapped[int] = mapped_column(Integer)
    island: Mapped[int] = mapped_column(Integer)
    parent_id: Mapped[Optional[int]] = mapped_column(ForeignKey("programs.id"))
    proposer: Mapped[str] = mapped_column(Text)
    stage: Mapped[str] = mapped_column(Text)                      # where it ended: propose, edit, quick, train
    status: Mapped[str] = mapped_column(Text)                     # ok, failed
    reason: Mapped[str] = mapped_column(Text, default="")
    message: Mapped[str] = mapped_column(Text, default="")
    proposal: Mapped[str] = mapped_column(Text, default="")       # raw edit text, kept for failed edits
    program_id: Mapped[Optional[int]] = mapped_column(ForeignKey("programs.id"))
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[float] = mapped_column(Float)


class Artifact(Base):
    __tablename__ = "artifacts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[Optional[int]] = mapped_column(ForeignKey("programs.id"), index=True)
    attempt_id: Mapped[Optional[int]] = mapped_column(ForeignKey("attempts.id"), index=True)
    name: Mapped[str] = mapped_column(Text)                       # stdout, stderr, traceback, validation
    content: Mapped[str] = mapped_column(Text)


class LlmCall(Base):
    __tablename__ = "llm_calls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    attempt_id: Mapped[Optional[int]] = mapped_column(ForeignKey("attempts.id"))
    program_id: Mapped[Optional[int]] = mapped_column(ForeignKey("programs.id"))
    model: Mapped[str] = mapped_column(Text)
    messages: Mapped[str] = mapped_column(Text)
    response: Mapped[str] = mapped_column(Text, default="")
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[Optional[float]] = mapped_column(Float)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)


class Measurement(Base):
    """One program's (or baseline's) decisions measured by a problem's real verifier (`adrs verify`).
    Appended, never replaced: each `adrs verify` is a new batch, and the report shows the latest."""
    __tablename__ = "measurements"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    batch: Mapped[int] = mapped_column(Integer)                   # 1 for the run's first `adrs verify`, then 2...
    program_id: Mapped[Optional[int]] = mapped_column(ForeignKey("programs.id"))   # None: a baseline not stored
    name: Mapped[str] = mapped_column(Text)                       # "#12", "initial", "baseline greedy_lpt"
    kind: Mapped[str] = mapped_column(Text)                       # initial, child, baseline
    verifier: Mapped[str] = mapped_column(Text)                   # [verify] kind, e.g. moe_microbench
    workloads: Mapped[str] = mapped_column(Text)                  # JSON list of the workload ids measured
    status: Mapped[str] = mapped_column(Text)                     # ok, failed
    reason: Mapped[str] = mapped_column(Text, default="")
    sim_score: Mapped[Optional[float]] = mapped_column(Float)     # the simulator's score it was ranked by
    sim_basis: Mapped[str] = mapped_column(Text, default="")      # the split of sim_score: held-out or train
    score: Mapped[Optional[float]] = mapped_column(Float)         # the verifier's score (bounded, higher better)
    median_s: Mapped[Optional[float]] = mapped_column(Float)      # the measured time (the verifier says of what)
    spread: Mapped[Optional[float]] = mapped_column(Float)        # interquartile range / median (verifier's)
    repeats: Mapped[Optional[int]] = mapped_column(Integer)       # timed repeats, all timings together
    drift_flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    drift: Mapped[str] = mapped_column(Text, default="")          # why, when flagged
    device_kind: Mapped[str] = mapped_column(Text, default="")    # cuda, or cpu (a harness check)
    device: Mapped[str] = mapped_column(Text, default="")
    driver: Mapped[str] = mapped_column(Text, default="")
    sm_clock_mhz: Mapped[Optional[float]] = mapped_column(Float)  # mean of the readings around the timings
    mem_clock_mhz: Mapped[Optional[float]] = mapped_column(Float)
    temperature_c: Mapped[Optional[float]] = mapped_column(Float)   # the hottest reading
    detail: Mapped[str] = mapped_column(Text, default="")         # JSON: per-layer figures, readings, simulator
    created_at: Mapped[float] = mapped_column(Float)
