"""The lineage store: every run, program, metric, feedback, attempt, artifact and LLM call.

The only package that talks to the database (SQLAlchemy 2); everyone else uses Store's methods and the
plain records below. tests/test_store.py fails if a module outside evolve/store/ imports sqlalchemy.

The plain records are imported at once; everything that needs SQLAlchemy (about 0.2 s of imports) only when
first named (PEP 562), so the evaluation workers, which pass MetricRow and FeedbackRow around but never open
the store, start without it.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evolve.store.records import (CallCost, CallOutcome, FeedbackRow, MeasurementRow, MetricRow,  # noqa: F401
                                  NewAttempt, NewProgram)

if TYPE_CHECKING:
    from evolve.store.schema import (SCHEMA_VERSION, Artifact, Attempt, Base, Feedback, LlmCall,  # noqa: F401
                                     Measurement, Meta, Metric, Program, Run, RunEvent)
    from evolve.store.store import Store

_LAZY = {name: "evolve.store.schema" for name in (
    "SCHEMA_VERSION", "Artifact", "Attempt", "Base", "Feedback", "LlmCall", "Measurement", "Meta", "Metric",
    "Program", "Run", "RunEvent")}
_LAZY.update(Store="evolve.store.store", migrate="evolve.store.migrate")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name, None)
        if value is None:  # a submodule (migrate)
            value = importlib.import_module(_LAZY[name])
    elif name == "shown_url":
        from evolve.store.engine import shown as value
    elif name == "SQLALCHEMY_VERSION":   # recorded with each run, without importing sqlalchemy there
        import sqlalchemy
        value = sqlalchemy.__version__
    else:
        raise AttributeError(f"module 'evolve.store' has no attribute '{name}'")
    globals()[name] = value
    return value


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def metrics_by_program(store: "Store", run_id: str, split: str) -> dict[int, list[MetricRow]]:
    """All metric rows of one split for a run, grouped by program (see Store.metrics_by_program)."""
    return store.metrics_by_program(run_id, split)
