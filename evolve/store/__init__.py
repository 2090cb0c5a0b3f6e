"""The lineage store: every run, program, metric, feedback, attempt, artifact and LLM call.

The only package that talks to the database (SQLAlchemy 2); everyone else uses Store's methods and the
plain records below. tests/test_store.py fails if a module outside evolve/store/ imports sqlalchemy.
"""
from pathlib import Path

import sqlalchemy as _sqlalchemy

from evolve.store.records import (CallCost, CallOutcome, FeedbackRow, MeasurementRow, MetricRow,  # noqa: F401
                                  NewAttempt, NewProgram)
from evolve.store.schema import (SCHEMA_VERSION, Artifact, Attempt, Base, Feedback, LlmCall,  # noqa: F401
                                 Measurement, Meta, Metric, Program, Run, RunEvent)
from evolve.store.engine import shown as shown_url  # noqa: F401
from evolve.store.store import Store  # noqa: F401

SQLALCHEMY_VERSION = _sqlalchemy.__version__   # recorded with each run, without importing sqlalchemy there


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def metrics_by_program(store: Store, run_id: str, split: str) -> dict[int, list[MetricRow]]:
    """All metric rows of one split for a run, grouped by program (see Store.metrics_by_program)."""
    return store.metrics_by_program(run_id, split)
