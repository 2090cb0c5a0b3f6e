"""The Store: every read and write of the lineage, so no module outside evolve/store/ needs SQLAlchemy.

Append-only: rows are inserted, never updated (a run's status is the latest of its events). One iteration
is committed in one transaction, so a killed run leaves either all of an iteration or none of it.
SQLite (the default) runs in WAL mode; PostgreSQL (postgresql+psycopg://...) holds several runs, with
readers and writers on other machines. Under both, readers never block the writer. Reads return the ORM
rows (detached, safe to keep) or the plain records of records.py.
"""
from __future__ import annotations

import json
import time
from typing import Iterable, Mapping, Sequence

from sqlalchemy import func, insert, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from evolve.errors import AdrsError
from evolve.store import engine as eng
from evolve.store.records import (CallCost, CallOutcome, FeedbackRow, MeasurementRow, MetricRow, NewAttempt,
                                  NewProgram)
from evolve.store.schema import (Artifact, Attempt, Feedback, LlmCall, Measurement, Metric, Program, Run,
                                 RunEvent)

# the tables run_rows reads; _run_query knows how each is tied to a run
_RUN_TABLES = {"programs": Program, "attempts": Attempt, "metrics": Metric, "feedback": Feedback,
               "artifacts": Artifact, "llm_calls": LlmCall, "measurements": Measurement}


class Store:
    """Open (or create) a lineage store at a SQLAlchemy URL."""

    def __init__(self, url: str, create: bool = False) -> None:
        self.url = eng.shown(url)   # for messages and records: a password in the URL is masked
        self.engine = eng.make_engine(url)
        self._snapshots = eng.snapshot_engine(self.engine)
        self._counter = eng.StatementCounter(self.engine)
        eng.check_or_create(self.engine, self.url, create)

    def close(self) -> None:
        self.engine.dispose()

    @staticmethod
    def ping(url: str) -> None:
        """Check that a database URL opens and answers a query (for `adrs doctor`); raises the driver's error."""
        eng.ping(url)

    @property
    def statements(self) -> int:
        """SQL statements run through this store so far (query-count tests and benches)."""
        return self._counter.n

    def _read(self) -> Session:
        # detached rows keep their loaded values, so callers can use them after the session closes
        return Session(self.engine, expire_on_commit=False)

    # -- runs -----------------------------------------------------------------------------------------
    def create_run(self, run: Run, detail: str = "") -> None:
        """Record a new run and its `started` event (with `detail`, e.g. that it is not reproducible)."""
        try:
            with Session(self.engine) as s, s.begin():
                s.add(run)
                s.flush()   # the run first: its id is what can clash in a shared store
                s.add(RunEvent(run_id=run.id, kind="started", detail=detail, at=time.time()))
        except IntegrityError:
            raise AdrsError(f"{self.url}: already holds a run '{run.id}'; choose another run id") from None

    def add_event(self, run_id: str, kind: str, detail: str = "") -> None:
        with Session(self.engine) as s, s.begin():
            s.add(RunEvent(run_id=run_id, kind=kind, detail=detail, at=time.time()))

    def run(self, run_id: str) -> Run:
        with self._read() as s:
            r = s.get(Run, run_id)
        if r is None:
            raise AdrsError(f"{self.url}: no run '{run_id}'")
        return r

    def runs(self) -> list[Run]:
        with self._read() as s:
            return list(s.scalars(select(Run).order_by(Run.created_at)))

    def events(self, run_id: str) -> list[RunEvent]:
        with self._read() as s:
            return list(s.scalars(select(RunEvent).where(RunEvent.run_id == run_id).order_by(RunEvent.id)))

    # -- writes ---------------------------------------------------------------------------------------
    def add_program(self, run_id: str, p: NewProgram) -> int:
        """Insert a program outside the loop (a baseline) with its metrics, artifacts and feedback."""
        with Session(self.engine) as s, s.begin():
            return _insert_program(s, run_id, p)

    def commit_attempt(self, run_id: str, a: NewAttempt) -> int | None:
        """Insert one iteration (attempt, its program, metrics, feedback, artifacts, LLM calls) atomically."""
        with Session(self.engine) as s, s.begin():
            pid = _insert_program(s, run_id, a.program) if a.program else None
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

    def add_metrics(self, program_id: int, rows: Iterable[MetricRow],
                    feedback: Iterable[FeedbackRow] = ()) -> None:
        """Add scores of an existing program (the held-out split), with the evaluator's words, atomically."""
        with Session(self.engine) as s, s.begin():
            _insert_metrics(s, program_id, list(rows))
            _insert_feedback(s, program_id, list(feedback))

    # -- programs -------------------------------------------------------------------------------------
    def programs(self, run_id: str, kind: str | None = None, status: str | None = None) -> list[Program]:
        q = select(Program).where(Program.run_id == run_id)
        if kind:
            q = q.where(Program.kind == kind)
        if status:
            q = q.where(Program.status == status)
        with self._read() as s:
            return list(s.scalars(q.order_by(Program.id)))

    def program(self, run_id: str, program_id: int) -> Program:
        with self._read() as s:
            p = s.get(Program, program_id)
        if p is None or p.run_id != run_id:
            raise AdrsError(f"run '{run_id}' has no program {program_id}")
        return p

    def sources(self, ids: list[int]) -> dict[int, str]:
        with Session(self.engine) as s:
            return dict(s.execute(select(Program.id, Program.source).where(Program.id.in_(ids))).all())

    def metrics(self, program_id: int, split: str | None = None) -> list[MetricRow]:
        q = select(Metric).where(Metric.program_id == program_id)
        if split:
            q = q.where(Metric.split == split)
        with Session(self.engine) as s:
            return [MetricRow(e.workload, e.split, e.metric, e.value, json.loads(e.samples) if e.samples else None)
                    for e in s.scalars(q.order_by(Metric.id))]

    def metrics_by_program(self, run_id: str, split: str) -> dict[int, list[MetricRow]]:
        """All metric rows of one split for a run, grouped by program (one query, for rebuilding the archive)."""
        q = (select(Metric).join(Program, Program.id == Metric.program_id)
             .where(Program.run_id == run_id, Metric.split == split).order_by(Metric.id))
        out: dict[int, list[MetricRow]] = {}
        with Session(self.engine) as s:
            for e in s.scalars(q):
                out.setdefault(e.program_id, []).append(MetricRow(e.workload, e.split, e.metric, e.value))
        return out

    def programs_with_split(self, run_id: str, split: str) -> set[int]:
        """Ids of the run's programs that have metrics on a split (what final scoring has already done)."""
        q = (select(Metric.program_id).join(Program, Program.id == Metric.program_id)
             .where(Program.run_id == run_id, Metric.split == split).distinct())
        with Session(self.engine) as s:
            return set(s.scalars(q))

    def feedback(self, program_id: int, split: str | None = None) -> list[FeedbackRow]:
        """The evaluator's words about a program, per workload, in the order they were stored."""
        q = select(Feedback).where(Feedback.program_id == program_id)
        if split:
            q = q.where(Feedback.split == split)
        with Session(self.engine) as s:
            return [FeedbackRow(f.workload, f.split, f.text) for f in s.scalars(q.order_by(Feedback.id))]

    def artifacts(self, program_id: int) -> dict[str, str]:
        with Session(self.engine) as s:
            rows = s.scalars(select(Artifact).where(Artifact.program_id == program_id).order_by(Artifact.id))
            return {a.name: a.content for a in rows}

    # -- attempts -------------------------------------------------------------------------------------
    def attempts(self, run_id: str) -> list[Attempt]:
        with self._read() as s:
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

    # -- LLM calls ------------------------------------------------------------------------------------
    def llm_calls(self, program_id: int) -> list[LlmCall]:
        """The LLM calls that produced a program, in the order they were made."""
        with self._read() as s:
            return list(s.scalars(select(LlmCall).where(LlmCall.program_id == program_id).order_by(LlmCall.id)))

    def calls_by_iteration(self, run_id: str) -> dict[int, list[LlmCall]]:
        """Every LLM call of a run's attempts, grouped by the attempt's iteration, in call order (replay)."""
        q = (select(Attempt.iteration, LlmCall).join(LlmCall, LlmCall.attempt_id == Attempt.id)
             .where(Attempt.run_id == run_id).order_by(Attempt.iteration, LlmCall.id))
        out: dict[int, list[LlmCall]] = {}
        with self._read() as s:
            for it, call in s.execute(q):
                out.setdefault(it, []).append(call)
        return out

    def call_costs(self, run_id: str) -> list[CallCost]:
        """Model, tokens, dollars and error of each LLM call of a run, in call order."""
        L = LlmCall
        q = (select(L.model, L.prompt_tokens, L.completion_tokens, L.cost_usd, L.error)
             .where(L.run_id == run_id).order_by(L.id))
        with Session(self.engine) as s:
            return [CallCost(*r) for r in s.execute(q)]

    def spent_usd(self, run_id: str) -> float:
        """Known dollars already spent by a run (for budgets that survive resume)."""
        with Session(self.engine) as s:
            v = s.scalar(select(func.sum(LlmCall.cost_usd)).where(LlmCall.run_id == run_id))
        return float(v or 0.0)

    def call_outcomes(self, run_id: str, after: int, upto: int) -> list[CallOutcome]:
        """Each LLM call of the attempts with after < iteration <= upto, with the parent's and the child's
        score, by iteration then call (what the ensemble learns from)."""
        parent, child = aliased(Program), aliased(Program)
        q = (select(Attempt.iteration, LlmCall.model, LlmCall.cost_usd, parent.score, child.score)
             .join(LlmCall, LlmCall.attempt_id == Attempt.id)
             .outerjoin(parent, parent.id == Attempt.parent_id)
             .outerjoin(child, child.id == Attempt.program_id)
             .where(Attempt.run_id == run_id, Attempt.iteration > after, Attempt.iteration <= upto)
             .order_by(Attempt.iteration, LlmCall.id))
        with Session(self.engine) as s:
            return [CallOutcome(*r) for r in s.execute(q)]

    # -- measurements (`adrs verify`) ----------------------------------------------------------------------
    def add_measurements(self, run_id: str, rows: Sequence[MeasurementRow]) -> int:
        """Append one verification's measurements as the run's next batch, atomically; returns the batch."""
        with Session(self.engine) as s, s.begin():
            batch = (s.scalar(select(func.max(Measurement.batch)).where(Measurement.run_id == run_id)) or 0) + 1
            now = time.time()
            fields = [f for f in MeasurementRow.__dataclass_fields__ if f not in ("batch", "created_at", "detail")]
            s.add_all(Measurement(run_id=run_id, batch=batch, created_at=now, detail=json.dumps(r.detail),
                                  **{f: getattr(r, f) if f != "workloads" else json.dumps(r.workloads)
                                     for f in fields}) for r in rows)
        return batch

    def measurements(self, run_id: str, batch: int | None = None) -> list[MeasurementRow]:
        """A run's measurements in the order they were stored: one batch, or every batch (None)."""
        q = select(Measurement).where(Measurement.run_id == run_id)
        if batch is not None:
            q = q.where(Measurement.batch == batch)
        with Session(self.engine) as s:
            return [measurement_row(m) for m in s.scalars(q.order_by(Measurement.id))]

    # -- whole runs -----------------------------------------------------------------------------------
    def run_rows(self, run_id: str, columns: Mapping[str, Sequence[str]]) -> dict[str, list[tuple]]:
        """Rows of a run in several tables, as tuples of the named columns, read in one snapshot with one
        query per table (the report loads a 2,000-program run this way).

        `columns` maps a table (programs, attempts, metrics, feedback, artifacts, llm_calls) to the column
        names wanted, in the order the tuples should have them. Rows come in insertion order (attempts by
        iteration); artifacts are those of the run's programs and of its attempts."""
        out: dict[str, list[tuple]] = {}
        with Session(self._snapshots) as s:  # one read transaction, one snapshot, even while a run writes
            eng.begin_snapshot(s)
            for table, cols in columns.items():
                out[table] = [tuple(r) for r in s.execute(_run_query(table, cols, run_id))]
        return out


def _run_query(table: str, cols: Sequence[str], run_id: str):
    if table not in _RUN_TABLES:
        raise ValueError(f"run_rows: unknown table {table!r}; known: {', '.join(_RUN_TABLES)}")
    T = _RUN_TABLES[table]
    missing = [c for c in cols if c not in T.__table__.columns]
    if missing:
        raise ValueError(f"run_rows: {table} has no column {', '.join(missing)}")
    q = select(*[getattr(T, c) for c in cols])
    if T in (Metric, Feedback):
        q = q.join(Program, Program.id == T.program_id).where(Program.run_id == run_id)
    elif T is Artifact:
        q = q.where(or_(Artifact.program_id.in_(select(Program.id).where(Program.run_id == run_id)),
                        Artifact.attempt_id.in_(select(Attempt.id).where(Attempt.run_id == run_id))))
    else:
        q = q.where(T.run_id == run_id)
    return q.order_by(Attempt.iteration if T is Attempt else T.id)


def _insert_program(s: Session, run_id: str, p: NewProgram) -> int:
    row = Program(run_id=run_id, iteration=p.iteration, kind=p.kind, name=p.name, parent_id=p.parent_id,
                  island=p.island, generation=p.generation, source=p.source, diff=p.diff,
                  status=p.status, reason=p.reason, score=p.score, origin=p.origin,
                  created_at=time.time())
    s.add(row)
    s.flush()
    _insert_metrics(s, row.id, p.metrics)
    _insert_feedback(s, row.id, p.feedback)
    if p.artifacts:
        s.execute(insert(Artifact), [dict(program_id=row.id, name=k, content=v)
                                     for k, v in p.artifacts.items()])
    return row.id


def _insert_metrics(s: Session, program_id: int, rows: list[MetricRow]) -> None:
    if rows:
        s.execute(insert(Metric), [dict(program_id=program_id, workload=m.workload, split=m.split,
                                        metric=m.metric, value=m.value,
                                        samples=json.dumps(m.samples) if m.samples is not None else None)
                                   for m in rows])


def _insert_feedback(s: Session, program_id: int, rows: list[FeedbackRow]) -> None:
    if rows:
        s.execute(insert(Feedback), [dict(program_id=program_id, split=f.split, workload=f.workload, text=f.text)
                                     for f in rows])


def measurement_row(m: Measurement) -> MeasurementRow:
    """The plain record of a stored measurement (JSON columns decoded)."""
    names = [f for f in MeasurementRow.__dataclass_fields__ if f not in ("workloads", "detail")]
    return MeasurementRow(workloads=json.loads(m.workloads), detail=json.loads(m.detail) if m.detail else {},
                          **{f: getattr(m, f) for f in names})
