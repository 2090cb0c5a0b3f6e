"""Serving step profiler: time prefill, decode and mixed steps over a grid, fit the serving simulator's step
model, and write a profile file it loads (`adrs-serving-profile/1`, evaluators/serving/profile.py).

Each grid point is one step (transformer.StepShape). The harness (bench.py) times `layers` layers of the
stack and the LM head; the step's device time is layers_s * model_layers / layers + head_s (the layers are
alike, so a few scale to the model's depth), plus an optional host overhead per step that a layer stack
cannot see (the simulator's analytic default is 0.5 ms). Grid points are split into train and held-out
(every `HOLDOUT_EVERY`-th point of each kind, by size): the profile's `table` holds the train points only,
so evaluators/serving/profile.py's own non-negative least-squares fit is the one the simulator uses, and
its error on the held-out points (MAPE) is reported, with the analytic roofline's error beside it when the
timed shapes are the profile's model.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from evaluators.gpu.bench import Bench
from evaluators.gpu.transformer import LayerStack, StepShape
from evaluators.serving.gpu import ModelShape, StepCost, gpu_model
from evaluators.serving.profile import FEATURES, FORMAT, load_profile

HOLDOUT_EVERY = 4
COLUMNS = [*FEATURES, "step_s"]


def gpu_grid() -> list[StepShape]:
    """Llama-3-8B-sized steps: prefill chunks up to 8K over prefixes up to 16K, decode batches up to 256
    over contexts up to 16K (at most 1M cached tokens in one step: 4 GB of KV), and mixed steps."""
    prefill = [StepShape(chunk=c, prefix=p) for c in (64, 256, 512, 1024, 2048, 4096, 8192) for p in (0, 4096, 16384)]
    decode = [StepShape(decodes=m, context=s) for m in (1, 4, 16, 64, 128, 256) for s in (256, 1024, 4096, 16384)
              if m * s <= 1 << 20]
    mixed = [StepShape(chunk=512, prefix=0, decodes=32, context=2048),
             StepShape(chunk=512, prefix=2048, decodes=128, context=2048),
             StepShape(chunk=2048, prefix=0, decodes=64, context=1024)]
    return prefill + decode + mixed


def cpu_grid() -> list[StepShape]:
    """The same kinds of step at the tiny shapes (transformer.TINY)."""
    prefill = [StepShape(chunk=c, prefix=p) for c in (16, 64, 128, 256) for p in (0, 256)]
    decode = [StepShape(decodes=m, context=s) for m in (1, 4, 16, 32) for s in (64, 512)]
    mixed = [StepShape(chunk=64, prefix=0, decodes=8, context=256),
             StepShape(chunk=128, prefix=64, decodes=16, context=128)]
    return prefill + decode + mixed


def split_heldout(steps: list[StepShape], every: int = HOLDOUT_EVERY) -> tuple[list[StepShape], list[StepShape]]:
    """Every `every`-th step of each kind, ordered by token count then cached tokens, is held out (from the
    second on, so each kind's smallest step is fitted), the rest fitted."""
    train, held = [], []
    for kind in ("prefill", "decode", "mixed"):
        mine = sorted((s for s in steps if s.kind == kind), key=lambda s: (s.features()["tokens"], s.features()["kv_read"]))
        for i, s in enumerate(mine):
            (held if i % every == every // 2 else train).append(s)
    return train, held


@dataclass(frozen=True)
class StepPoint:
    step: StepShape
    layers_s: float      # the timed layers
    head_s: float
    step_s: float        # the whole step: scaled layers + head + host overhead
    flagged: bool        # the drift check flagged the measurement kept
    rounds_s: tuple[float, ...] = ()   # step_s of every round

    def row(self) -> list[float]:
        f = self.step.features()
        return [float(f[k]) for k in FEATURES] + [self.step_s]

    def as_dict(self) -> dict:
        return {**asdict(self.step), "kind": self.step.kind, **self.step.features(), "layers_s": self.layers_s,
                "head_s": self.head_s, "step_s": self.step_s, "flagged": self.flagged,
                "rounds_s": list(self.rounds_s)}


def profile_steps(bench: Bench, stack: LayerStack, steps: list[StepShape], model_layers: int,
                  host_overhead_s: float = 0.0, rounds: int = 1, on_point=None) -> list[StepPoint]:
    """Time every step `rounds` times, a whole pass over the grid per round, and keep each step's fastest
    round (its median over repeats). On a shared machine contention only ever adds time, and a slow spell
    then spoils one round of a step, not its figure; on a lent GPU one round is enough."""
    passes: list[list[StepPoint]] = []
    for _ in range(rounds):
        passes.append([_time_step(bench, stack, step, model_layers, host_overhead_s) for step in steps])
    points = []
    for i, step in enumerate(steps):
        tries = [p[i] for p in passes]
        best = min(tries, key=lambda p: p.step_s)
        points.append(StepPoint(step, best.layers_s, best.head_s, best.step_s, best.flagged,
                                tuple(p.step_s for p in tries)))
        if on_point is not None:
            on_point(points[-1])
    return points


def _time_step(bench: Bench, stack: LayerStack, step: StepShape, model_layers: int, overhead_s: float) -> StepPoint:
    prepared = stack.prepare(step)   # inputs and KV caches, outside the timed region
    layers = stack.b.graphed(lambda: stack.run_layers(prepared), f"layers {step.label()}")
    head = stack.b.graphed(lambda: stack.run_head(prepared), f"head {step.label()}")
    rec = bench.measure(f"step {step.label()}", {"layers": layers, "head": head}, **asdict(step))
    layers_s, head_s = rec.median("layers"), rec.median("head")
    return StepPoint(step, layers_s, head_s, layers_s * model_layers / stack.n + head_s + overhead_s, rec.flagged)


def mape(cost: StepCost, points: list[StepPoint], minus_s: float = 0.0) -> float:
    """Mean absolute percentage error of cost's step times (less minus_s) against the points' (less minus_s)."""
    pred = np.array([cost.time(**p.step.features()) for p in points]) - minus_s
    meas = np.array([p.step_s for p in points]) - minus_s
    return float(np.mean(np.abs(pred - meas) / meas))


def profile_body(device_key: str, model_key: str, points: list[StepPoint], command: str,
                 date: str | None = None) -> dict:
    return {"format": FORMAT, "device": device_key, "model": model_key, "date": date or dt.date.today().isoformat(),
            "command": command, "table": {"columns": COLUMNS, "rows": [p.row() for p in points]}}


@dataclass(frozen=True)
class ProfileResult:
    profile_path: str
    report_path: str
    cost: StepCost
    fit_mape: float
    heldout_mape: float
    heldout_device_mape: float        # on device time alone (the host overhead taken off both sides)
    analytic_heldout_mape: float | None


def write_profile(out_dir: Path, device_key: str, model_key: str, train: list[StepPoint], held: list[StepPoint],
                  command: str, host_overhead_s: float, context: dict) -> ProfileResult:
    """profile.json (loadable by the simulator) and profile_report.json (every point, the errors, the
    device and the harness's summary)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "profile.json"
    path.write_text(json.dumps(profile_body(device_key, model_key, train, command), indent=1) + "\n")
    prof = load_profile(path)    # the simulator's own loader and fit
    cost, fit = prof.step, prof.fit_mape
    same_model = context.get("timed_shape") == model_key
    analytic = mape(gpu_model(device_key, model_key).step, held) if same_model and held else None
    result = ProfileResult(str(path), str(out_dir / "profile_report.json"), cost, fit,
                           mape(cost, held) if held else float("nan"),
                           mape(cost, held, host_overhead_s) if held else float("nan"), analytic)
    report = {"profile": path.name, "command": command, "host_overhead_s": host_overhead_s,
              "fitted": asdict(cost), "fit_mape": fit, "heldout_mape": result.heldout_mape,
              "heldout_device_mape": result.heldout_device_mape, "analytic_heldout_mape": analytic,
              "analytic": asdict(gpu_model(device_key, model_key).step), **context,
              "train": [p.as_dict() for p in train], "held_out": [p.as_dict() for p in held]}
    Path(result.report_path).write_text(json.dumps(report, indent=1) + "\n")
    return result


def shape_name(shape: ModelShape) -> str:
    return shape.name.lower()
