"""Spot availability per tick: a semi-Markov on/off generator per zone, and a loader for trace files.

Availability is a boolean matrix [region, tick]: True where spot capacity exists at the start of that
tick. The generator alternates up and down periods whose lengths are Weibull-distributed with the zone's
means (shape < 1 gives the heavy tails of real spot lifetimes: most periods short, a few very long; shape
1 is the memoryless special case). It starts WARMUP_H before time 0 so tick 0 falls at a random point of
a period, as in a trace cut from a longer record. A period's state is sampled at each tick's start.

A trace file has one line per tick; each line holds one 0/1 per region (separated by spaces or commas).
Blank lines and lines starting with '#' are skipped. Errors name the file, the line and the field.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluators.base import ConfigError
from evaluators.spot.zones import Zone

WARMUP_H = 48.0
DEFAULT_SHAPE = 0.8


@dataclass(frozen=True)
class Availability:
    """Spot availability of one episode: `up[r, t]` for region r at tick t, with each region's name and
    spot price. Only the trusted side ever holds it whole."""

    up: np.ndarray
    tick_s: int
    names: tuple[str, ...]
    spot_prices: tuple[float, ...]
    source: str

    @property
    def regions(self) -> int:
        return self.up.shape[0]

    @property
    def ticks(self) -> int:
        return self.up.shape[1]


def zone_trace(zone: Zone, ticks: int, tick_s: int, rng: np.random.Generator,
               shape: float = DEFAULT_SHAPE) -> np.ndarray:
    """One zone's availability at `ticks` tick starts (bool array)."""
    scale = 1.0 / math.gamma(1.0 + 1.0 / shape)  # a Weibull(shape) draw times this has mean 1
    horizon = ticks * tick_s
    pos, up = -WARMUP_H * 3600.0, bool(rng.random() < zone.availability)
    starts, states = [], []
    while pos < horizon:
        mean_s = 3600.0 * (zone.mean_up_h if up else zone.mean_down_h)
        starts.append(pos)
        states.append(up)
        pos += mean_s * scale * rng.weibull(shape)
        up = not up
    idx = np.searchsorted(np.asarray(starts), np.arange(ticks) * float(tick_s), side="right") - 1
    return np.asarray(states, dtype=bool)[idx]


def generate(zones: tuple[Zone, ...], ticks: int, tick_s: int, seed_words: tuple[int, ...],
             shape: float = DEFAULT_SHAPE, source: str = "") -> Availability:
    """Independent traces for `zones`, each from its own stream of SeedSequence(seed_words + (zone index,))."""
    rows = [zone_trace(z, ticks, tick_s, np.random.default_rng(np.random.SeedSequence(list(seed_words) + [i])),
                       shape) for i, z in enumerate(zones)]
    return Availability(np.vstack(rows), tick_s, tuple(z.name for z in zones),
                        tuple(z.spot_price for z in zones), source)


_SEP = re.compile(r"[,\s]+")


def load(path: Path, tick_s: int, spot_prices: tuple[float, ...], regions: int | None = None) -> Availability:
    """A trace file (see the module doc). `regions`, if given, is the number of columns each line must have;
    `spot_prices` gives one price per column (one price is used for every column)."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read trace file: {e.strerror or e}") from None
    rows: list[list[bool]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        body = line.strip()
        if not body or body.startswith("#"):
            continue
        fields = _SEP.split(body)
        for k, tok in enumerate(fields, 1):
            if tok not in ("0", "1"):
                raise ConfigError(f"{path}:{lineno}: field {k}: expected 0 or 1, got '{tok}'")
        want = regions if regions is not None else (len(rows[0]) if rows else len(fields))
        if len(fields) != want:
            raise ConfigError(f"{path}:{lineno}: {len(fields)} fields, expected {want} (one 0/1 per region)")
        rows.append([tok == "1" for tok in fields])
    if not rows:
        raise ConfigError(f"{path}: no ticks (one 0/1 per region per line)")
    up = np.asarray(rows, dtype=bool).T.copy()
    prices = spot_prices if len(spot_prices) == up.shape[0] else spot_prices[:1] * up.shape[0]
    if len(spot_prices) not in (1, up.shape[0]):
        raise ConfigError(f"{path}: {up.shape[0]} regions but {len(spot_prices)} spot prices")
    names = tuple(f"{path.stem}[{i}]" for i in range(up.shape[0])) if up.shape[0] > 1 else (path.stem,)
    return Availability(up, tick_s, names, tuple(prices), str(path))
