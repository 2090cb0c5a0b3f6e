"""Validate a candidate's repaired counters and score them against the ground truth (trusted side only).

Per interval, over every counter c (tx and rx of every interface):
- corrupted[c]: the reported value was outside the tolerance of the truth (2%, at least 0.2 Mbps).
- ok[c]: the repaired value is within the tolerance of the truth.
- fixed = corrupted and ok; broken = not corrupted and not ok (a good counter the repair ruined).
- flagged[c]: the candidate's suspicion >= 0.5, or, where it gives none, the repair changed the counter
  beyond the tolerance of the reported value.
Summed over the workload's intervals:
    repair = max(0, (fixed - broken) / corrupted)          net share of the corruption repaired
    detection = max(0, Matthews correlation of flagged with corrupted)   chance-corrected: flagging every
                counter, or none, or at random scores 0
    score = 0.8 * repair + 0.2 * detection                  in [0, 1]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluators.base import InvalidOutput
from evaluators.telemetry_repair.faults import TOLERANCE, FLOOR_MBPS, within
from evaluators.telemetry_repair.workloads import Interval

REPAIR_WEIGHT = 0.8
KEYS = ("tx", "rx", "suspect_tx", "suspect_rx")


@dataclass(frozen=True)
class Repair:
    tx: np.ndarray
    rx: np.ndarray
    suspect_tx: np.ndarray | None
    suspect_rx: np.ndarray | None


def _array(result: dict, key: str, n: int) -> np.ndarray:
    try:
        a = np.asarray(result[key])
    except (ValueError, TypeError) as e:
        raise InvalidOutput(f"'{key}' is not a flat array of numbers: {e}") from None
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise InvalidOutput(f"'{key}' must hold numbers, got dtype {a.dtype}")
    if a.shape != (n,):
        raise InvalidOutput(f"'{key}' shape {a.shape}, expected ({n},): one value per interface")
    a = a.astype(np.float64)
    bad = ~np.isfinite(a)
    if bad.any():
        raise InvalidOutput(f"'{key}'[{int(np.flatnonzero(bad)[0])}] is not finite")
    return a


def validate(result: Any, n_ifaces: int) -> Repair:
    if not isinstance(result, dict):
        raise InvalidOutput(f"repair must return a dict with 'tx' and 'rx' (and optionally 'suspect_tx', "
                            f"'suspect_rx'), got {type(result).__name__}")
    unknown = sorted(str(k) for k in result if k not in KEYS)
    if unknown:
        raise InvalidOutput(f"repair returned unknown key '{unknown[0]}' (allowed: {', '.join(KEYS)}); "
                            f"scores are computed by the evaluator")
    for k in ("tx", "rx"):
        if k not in result:
            raise InvalidOutput(f"repair must return '{k}': the repaired counters")
    tx, rx = _array(result, "tx", n_ifaces), _array(result, "rx", n_ifaces)
    for key, a in (("tx", tx), ("rx", rx)):
        if (a < 0).any():
            raise InvalidOutput(f"'{key}'[{int(np.flatnonzero(a < 0)[0])}] = {a[a < 0][0]:g}: rates are never negative")
    suspects = []
    for key in ("suspect_tx", "suspect_rx"):
        if key not in result or result[key] is None:
            suspects.append(None)
            continue
        s = _array(result, key, n_ifaces)
        out = (s < 0) | (s > 1)
        if out.any():
            raise InvalidOutput(f"'{key}'[{int(np.flatnonzero(out)[0])}] = {s[out][0]:g} is not in [0, 1]")
        suspects.append(s)
    return Repair(tx, rx, *suspects)


@dataclass
class Tally:
    """Counts over every counter of every interval so far."""

    counters: int = 0
    corrupted: int = 0
    fixed: int = 0
    broken: int = 0
    flagged: int = 0
    flagged_corrupted: int = 0
    ok: int = 0
    by_kind: dict[int, list[int]] = field(default_factory=dict)  # fault kind -> [corrupted, fixed]

    def add(self, interval: Interval, r: Repair) -> None:
        c, truth = interval.corrupted, interval.truth
        for rep, true, obs, bad, kind, sus in ((r.tx, truth.tx, c.observed.tx, c.bad_tx, c.kind_tx, r.suspect_tx),
                                              (r.rx, truth.rx, c.observed.rx, c.bad_rx, c.kind_rx, r.suspect_rx)):
            ok = within(rep, true)
            changed = np.abs(rep - obs) > TOLERANCE * np.maximum(np.abs(obs), FLOOR_MBPS)
            flagged = sus >= 0.5 if sus is not None else changed
            self.counters += len(rep)
            self.corrupted += int(bad.sum())
            self.fixed += int((bad & ok).sum())
            self.broken += int((~bad & ~ok).sum())
            self.ok += int(ok.sum())
            self.flagged += int(flagged.sum())
            self.flagged_corrupted += int((flagged & bad).sum())
            for k in np.unique(kind[bad]):
                entry = self.by_kind.setdefault(int(k), [0, 0])
                entry[0] += int((bad & (kind == k)).sum())
                entry[1] += int((bad & ok & (kind == k)).sum())

    def repair(self) -> float:
        if self.corrupted == 0:
            return 1.0 - self.broken / max(self.counters, 1)
        return max(0.0, (self.fixed - self.broken) / self.corrupted)

    def detection(self) -> float:
        """max(0, Matthews correlation coefficient) of the flags against the corruption."""
        tp = self.flagged_corrupted
        fp, fn = self.flagged - tp, self.corrupted - tp
        tn = self.counters - tp - fp - fn
        if fp == fn == 0:
            return 1.0  # every flag right, every corruption flagged (including: nothing to flag, none flagged)
        denom = float(self.flagged) * self.corrupted * (self.counters - self.flagged) * (self.counters - self.corrupted)
        return max(0.0, (tp * tn - fp * fn) / denom ** 0.5) if denom > 0 else 0.0

    def score(self) -> float:
        return REPAIR_WEIGHT * self.repair() + (1 - REPAIR_WEIGHT) * self.detection()
