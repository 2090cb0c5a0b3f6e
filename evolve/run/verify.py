"""The verifier stage (`adrs verify RUN --top K`): a run's best programs and the problem's baselines, measured
by the problem's real verifier ([verify] in problem.toml), the measurements stored beside the lineage.

1. Entrants: the top K programs by simulator score — held-out means when the run's final stage recorded
   them (the finalists), else train means — plus every baseline (its stored program when the final stage
   scored it, else its source from the problem folder, then without a simulator score).
2. Decisions: each entrant runs in the sandbox on the [verify] workloads, driven and validated by the
   problem's evaluator (decisions.py). The candidate returns decisions only; it never times itself.
3. Measurement: the trusted side times those decisions on the device (a CUDA GPU when present, else the CPU
   at tiny shapes, labelled a harness check), with the harness's noise control (evaluators/gpu/bench.py).
4. Store: one row per entrant in `measurements`, appended as a new batch (earlier batches are kept: a later
   verify on another device or day is a second opinion, not a correction).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable

from evolve import problem as problem_mod
from evolve.errors import AdrsError
from evolve.problem import ProblemSpec
from evolve.run import decisions as dec
from evolve.run.agreement import Agreement, agreement
from evolve.store import MeasurementRow, Program, Store
from evolve.terms import ProgramKind, Split, Status

# On the CPU the tiny shapes' weights fit the caches whatever is flushed; a small flush keeps the harness's
# path (a write between repeats) without a 64 MiB write before each of thousands of sub-millisecond timings.
CPU_FLUSH_BYTES = 1 << 20


@dataclass(frozen=True)
class Entrant:
    name: str
    kind: str
    program_id: int | None
    source: str
    sim_score: float | None
    sim_basis: str


@dataclass
class Outcome:
    batch: int
    rows: list[MeasurementRow]
    agreement: Agreement


def no_verifier_message(spec: ProblemSpec) -> str:
    having = [d.name for d in problem_mod.bundled_problems()
              if problem_mod.load(d, check_evaluator=False).verify is not None]
    return (f"problem '{spec.name}' declares no real verifier ([verify] in {spec.path}), so there is nothing to "
            f"measure beyond its simulator; problems with one: {', '.join(having) or 'none'}")


def entrants(store: Store, run_id: str, spec: ProblemSpec, top_k: int) -> list[Entrant]:
    """The top_k lineage programs by simulator score, then every baseline (see the module's docstring)."""
    score = spec.objective.score
    ok = [p for p in store.programs(run_id, status=Status.OK) if p.kind != ProgramKind.BASELINE]
    held = store.programs_with_split(run_id, Split.HELD_OUT)
    basis = Split.HELD_OUT.value if any(p.id in held for p in ok) else Split.TRAIN.value

    def sim(p: Program) -> float | None:
        return _held_out_mean(store, p.id, score) if basis == Split.HELD_OUT else p.score

    pool = [(p, sim(p)) for p in ok if basis == Split.TRAIN or p.id in held]
    best = sorted((x for x in pool if x[1] is not None), key=lambda x: (-x[1], x[0].id))[:top_k]
    out = [Entrant(_label(p), p.kind, p.id, p.source, s, basis) for p, s in best]
    stored = {p.name: p for p in store.programs(run_id, kind=ProgramKind.BASELINE)}
    for name, source in spec.baseline_sources().items():
        p = stored.get(name)
        if p is not None and p.status != Status.OK:
            continue   # the final stage already found it invalid: nothing to time
        out.append(Entrant(f"baseline {name}", ProgramKind.BASELINE.value, p.id if p else None, source,
                           sim(p) if p else None, basis))
    return out


def verify_run(store: Store, run_id: str, spec: ProblemSpec, sandbox, top_k: int, device: str = "auto",
               bench: Any = None, backend: Any = None, log: Callable[[str], None] = lambda m: None) -> Outcome:
    """Measure the entrants; store and return the batch. `bench`/`backend` replace the real ones (tests)."""
    if spec.verify is None:
        raise AdrsError(no_verifier_message(spec))
    if top_k < 1:
        raise AdrsError(f"--top must be at least 1, not {top_k}")
    found = entrants(store, run_id, spec, top_k)
    if not any(e.kind != ProgramKind.BASELINE for e in found):
        raise AdrsError(f"run '{run_id}' has no valid program to verify yet")
    backend, bench = _device(device, backend, bench)
    lineage = [e for e in found if e.kind != ProgramKind.BASELINE]
    log(f"entrants: the top {len(lineage)} of the run's programs by {lineage[0].sim_basis} simulator score "
        f"({', '.join(e.name for e in lineage)}) and {len(found) - len(lineage)} baselines")
    log(f"decisions: {len(found)} entrants on {', '.join(spec.verify.workloads)} (in the sandbox)")
    made = {e.name: dec.obtain(spec, sandbox, e.source, spec.verify.workloads) for e in found}
    verifier = _verifier(spec, bench, backend)
    log(f"measuring on {_device_name(bench, backend)}: {verifier.what}")
    try:
        with _one_thread(backend):
            measured = verifier.measure_all({n: d.answers for n, d in made.items() if d.ok}, log)
    except ValueError as e:   # e.g. a [verify] workload with nothing to time
        raise AdrsError(f"{spec.path}: [verify]: {e}") from None
    rows = [_row(e, made[e.name], measured.get(e.name), spec, bench, backend) for e in found]
    batch = store.add_measurements(run_id, rows)
    rows = store.measurements(run_id, batch)
    return Outcome(batch, rows, agreement(rows))


def latest(store: Store, run_id: str) -> Agreement | None:
    """The agreement of the run's latest verification batch (None when it was never verified)."""
    rows = store.measurements(run_id)
    if not rows:
        return None
    last = max(r.batch for r in rows)
    return agreement([r for r in rows if r.batch == last])


def _device(prefer: str, backend: Any, bench: Any):
    from evaluators.gpu.backend import TorchMissing, cuda_available, open_backend
    from evaluators.gpu.bench import Bench
    try:
        if backend is None:
            on_cpu = prefer == "cpu" or (prefer == "auto" and not cuda_available())
            backend = open_backend("cpu", flush_bytes=CPU_FLUSH_BYTES) if on_cpu else open_backend(prefer)
    except TorchMissing as e:
        raise AdrsError(f"adrs verify times the decisions with PyTorch: {e}") from None
    except (RuntimeError, ValueError) as e:
        raise AdrsError(str(e)) from None
    return backend, bench or Bench.on(backend)


@contextmanager
def _one_thread(backend: Any):
    """On the CPU, time with one thread: a simulated GPU's tiny GEMMs gain nothing from more, and on a shared
    machine extra threads wait on other processes, which is noise."""
    if backend.is_gpu:
        yield
        return
    before = backend.torch.get_num_threads()
    backend.torch.set_num_threads(1)
    try:
        yield
    finally:
        backend.torch.set_num_threads(before)


def _device_name(bench: Any, backend: Any) -> str:
    from evolve.run.agreement import CPU_LABEL
    name = bench.device.name if bench.device else backend.kind
    return f"{CPU_LABEL}: {name}" if not backend.is_gpu else name


def _verifier(spec: ProblemSpec, bench: Any, backend: Any):
    from evolve.run.verify_moe import KIND, MoeMicrobench
    if spec.verify.kind == KIND:
        return MoeMicrobench(spec, bench, backend)
    raise AdrsError(f"{spec.path}: verify.kind: no verifier '{spec.verify.kind}'")   # problem.py lists them


def _row(e: Entrant, d: dec.Decisions, m, spec: ProblemSpec, bench: Any, backend: Any) -> MeasurementRow:
    info = bench.device
    row = MeasurementRow(name=e.name, kind=e.kind, verifier=spec.verify.kind, workloads=list(spec.verify.workloads),
                         status=Status.OK.value, program_id=e.program_id, sim_score=e.sim_score,
                         sim_basis=e.sim_basis, device_kind=backend.kind, device=info.name if info else backend.kind,
                         driver=(info.driver or "") if info else "",
                         detail={"simulator": d.scorecard.metric_means(dec.SPLIT)})
    if not d.ok:
        row.status, row.reason = Status.FAILED.value, f"{d.scorecard.reason}: {d.scorecard.message}"
        return row
    for k in ("score", "median_s", "spread", "repeats", "drift_flagged", "drift", "sm_clock_mhz", "mem_clock_mhz",
              "temperature_c"):
        setattr(row, k, getattr(m, k))
    row.detail.update(m.detail)
    return row


def _label(p: Program) -> str:
    return "initial" if p.kind == ProgramKind.INITIAL else f"#{p.id} (iteration {p.iteration})"


def _held_out_mean(store: Store, pid: int, score: str) -> float | None:
    vals = [m.value for m in store.metrics(pid, Split.HELD_OUT) if m.metric == score]
    return sum(vals) / len(vals) if vals else None
