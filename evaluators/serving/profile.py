"""Profile files: measured figures that replace the analytic step-time constants of gpu.py.

Format (JSON object; `format` must be "adrs-serving-profile/1"):

    {"format": "adrs-serving-profile/1",
     "device": "h100",                 # a gpu.HARDWARE key: the preset whose other figures are kept
     "model": "llama-3-8b",            # a gpu.MODELS key
     "tp": 1,                          # optional, the model's default otherwise
     "date": "2025-06-01",             # when it was measured (ISO date)
     "command": "python bench/...",    # the command that produced it
     and exactly one of:
     "constants": {"hbm_bytes_per_s": 3.0e12, "compute_eff": 0.78, ...},
                                       # replaces gpu.Hardware fields (any subset); the roofline is rebuilt
     "coefficients": {"fixed_s": ..., "token_s": ..., "sampled_s": ..., "pair_s": ..., "kv_read_s": ...},
                                       # a whole-step linear model (gpu.StepCost), used as is
     "table": {"columns": ["tokens", "sampled", "pairs", "kv_read", "step_s"], "rows": [[...], ...]}
                                       # measured steps; fitted to a StepCost by least squares with
                                       # non-negative coefficients (the fit's MAPE is kept)
    }

Only linear step models are accepted, so the engine's closed-form decode advance stays exact. Errors are
ConfigError naming the file and the field.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from evaluators.base import ConfigError
from evaluators.serving.gpu import HARDWARE, MODELS, GpuModel, Hardware, StepCost, gpu_model

FORMAT = "adrs-serving-profile/1"
FEATURES = ("tokens", "sampled", "pairs", "kv_read")
_COEFS = ("fixed_s", "token_s", "sampled_s", "pair_s", "kv_read_s")
_KINDS = ("constants", "coefficients", "table")


@dataclass(frozen=True)
class Profile:
    path: str
    device: str
    model: str
    tp: int | None
    date: str
    command: str
    constants: dict[str, float] | None = None
    step: StepCost | None = None
    fit_mape: float | None = None   # of a fitted table, on its own rows

    def gpu(self, memory_utilization: float = 0.9, token_budget: int = 8192, max_running: int = 256) -> GpuModel:
        g = gpu_model(self.device, self.model, self.tp, memory_utilization, token_budget, max_running,
                      hardware_overrides=self.constants, step=self.step)
        return GpuModel(f"{g.name} (profile {Path(self.path).name}, {self.date})", g.step, g.kv_blocks,
                        g.kv_bytes_per_token)


def load_profile(path: str | Path) -> Profile:
    where = str(path)
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as e:
        raise ConfigError(f"profile {where}: cannot read: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"profile {where}: not JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"profile {where}: the top level must be a JSON object")
    if raw.get("format") != FORMAT:
        raise ConfigError(f"profile {where}: field 'format' must be \"{FORMAT}\", got {raw.get('format')!r}")
    device = _string(raw, "device", where).lower()
    model = _string(raw, "model", where).lower()
    if device not in HARDWARE:
        raise ConfigError(f"profile {where}: field 'device': unknown device '{device}' "
                          f"(known: {', '.join(sorted(HARDWARE))})")
    if model not in MODELS:
        raise ConfigError(f"profile {where}: field 'model': unknown model '{model}' (known: {', '.join(sorted(MODELS))})")
    tp = raw.get("tp")
    if tp is not None and (not isinstance(tp, int) or isinstance(tp, bool) or tp < 1):
        raise ConfigError(f"profile {where}: field 'tp' must be a positive integer, got {tp!r}")
    kinds = [k for k in _KINDS if k in raw]
    if len(kinds) != 1:
        raise ConfigError(f"profile {where}: needs exactly one of {', '.join(_KINDS)}; has {kinds or 'none'}")
    unknown = set(raw) - {"format", "device", "model", "tp", "date", "command", *_KINDS}
    if unknown:
        raise ConfigError(f"profile {where}: unknown field(s) {', '.join(sorted(unknown))}")
    base = dict(path=where, device=device, model=model, tp=tp, date=_string(raw, "date", where),
                command=_string(raw, "command", where))
    kind = kinds[0]
    if kind == "constants":
        prof = Profile(**base, constants=_constants(raw["constants"], where))
    elif kind == "coefficients":
        prof = Profile(**base, step=_coefficients(raw["coefficients"], where))
    else:
        step, mape = fit_table(raw["table"], where)
        prof = Profile(**base, step=step, fit_mape=mape)
    prof.gpu()  # resolve once so inconsistent figures fail here, at load time
    return prof


def _string(raw: dict, key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"profile {where}: field '{key}' must be a non-empty string, got {value!r}")
    return value


def _number(value, field: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
        raise ConfigError(f"profile {where}: field '{field}' must be a non-negative number, got {value!r}")
    return float(value)


def _constants(block, where: str) -> dict[str, float]:
    if not isinstance(block, dict) or not block:
        raise ConfigError(f"profile {where}: field 'constants' must be a non-empty object")
    allowed = {f.name for f in fields(Hardware)} - {"name"}
    out: dict[str, float] = {}
    for key, value in block.items():
        if key not in allowed:
            raise ConfigError(f"profile {where}: field 'constants.{key}' is not a hardware constant "
                              f"(known: {', '.join(sorted(allowed))})")
        out[key] = _number(value, f"constants.{key}", where)
        if key == "kernels_per_layer":
            out[key] = int(out[key])
    return out


def _coefficients(block, where: str) -> StepCost:
    if not isinstance(block, dict):
        raise ConfigError(f"profile {where}: field 'coefficients' must be an object")
    missing = [k for k in _COEFS if k not in block]
    extra = sorted(set(block) - set(_COEFS))
    if missing or extra:
        raise ConfigError(f"profile {where}: field 'coefficients' needs exactly {', '.join(_COEFS)} "
                          f"(missing {missing}, unknown {extra})")
    cost = StepCost(*(_number(block[k], f"coefficients.{k}", where) for k in _COEFS))
    cost.check(f"profile {where}: field 'coefficients'")
    return cost


def fit_table(block, where: str) -> tuple[StepCost, float]:
    """Least squares of step_s on (1, features) with non-negative coefficients (an active-set loop:
    drop the most negative coefficient and refit). Returns the cost and its MAPE on the rows."""
    if not isinstance(block, dict) or not isinstance(block.get("columns"), list) or not isinstance(block.get("rows"), list):
        raise ConfigError(f"profile {where}: field 'table' must be an object with 'columns' and 'rows' lists")
    cols = block["columns"]
    want = [*FEATURES, "step_s"]
    if sorted(cols) != sorted(want):
        raise ConfigError(f"profile {where}: field 'table.columns' must name {', '.join(want)}, got {cols}")
    rows = block["rows"]
    if len(rows) < len(want) + 1:
        raise ConfigError(f"profile {where}: field 'table.rows' needs at least {len(want) + 1} rows, has {len(rows)}")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(cols):
            raise ConfigError(f"profile {where}: field 'table.rows[{i}]' must be a list of {len(cols)} numbers")
        for j, v in enumerate(row):
            _number(v, f"table.rows[{i}][{j}] ({cols[j]})", where)
    data = np.asarray(rows, dtype=np.float64)
    y = data[:, cols.index("step_s")]
    if np.any(y <= 0):
        raise ConfigError(f"profile {where}: field 'table.rows': every step_s must be > 0")
    x = np.column_stack([np.ones(len(y))] + [data[:, cols.index(f)] for f in FEATURES])
    coef = _nonnegative_lstsq(x / y[:, None], np.ones(len(y)))  # relative error, as MAPE weighs it
    mape = float(np.mean(np.abs(x @ coef - y) / y))
    cost = StepCost(*(float(c) for c in coef))
    cost.check(f"profile {where}: field 'table' (fitted)")
    return cost, mape


def _nonnegative_lstsq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    active = list(range(a.shape[1]))
    while True:
        sol, *_ = np.linalg.lstsq(a[:, active], b, rcond=None)
        worst = int(np.argmin(sol))
        if sol[worst] >= 0 or len(active) == 1:
            coef = np.zeros(a.shape[1])
            coef[active] = np.maximum(sol, 0)
            return coef
        active.pop(worst)
