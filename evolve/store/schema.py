"""The lineage tables (SQLAlchemy 2 typed ORM). Only evolve/store/ touches them through SQLAlchemy.

SCHEMA_VERSION is stored in adrs_meta; bump it whenever a table or column changes, so an older or newer
adrs refuses a store it would misread instead of failing half-way through a run.
Version 2: the per-workload metric table is `metrics` (was `evaluations`) and `feedback` was added.
"""
from __future__ import annotations

from typing import Optional

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA_VERSION = 2


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


class Metric(Base):
    """One metric value of one program on one workload, computed by the trusted evaluator."""
    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metric_program", "program_id", "split"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    workload: Mapped[str] = mapped_column(String(256))
    split: Mapped[str] = mapped_column(String(16))              # quick, train, held-out
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    samples: Mapped[Optional[str]] = mapped_column(Text)        # JSON list of raw repeated measurements


class Feedback(Base):
    """The trusted evaluator's words about one program on one workload (never candidate output)."""
    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_program", "program_id", "split"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    split: Mapped[str] = mapped_column(String(16))
    workload: Mapped[str] = mapped_column(String(256))
    text: Mapped[str] = mapped_column(Text)


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
