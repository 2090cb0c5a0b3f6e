"""Workload ids of the spot problems, parsed into a job and the availability of each episode.

    cant_be_late:        <zone>:seed=<int>:deadline=<h>:overhead=<h>[:traces=<n>]
                         file=<path>:deadline=<h>:overhead=<h>
    cant_be_late_multi:  v100x9:seed=<int>:deadline=<h>:overhead=<h>[:start=<region>][:traces=<n>]
                         file=<path>:deadline=<h>:overhead=<h>[:start=<region>][:prices=<p1>/<p2>/...]

<zone> is a zone of zones.SINGLE_ZONES; v100x9 is zones.MULTI_REGIONS. A workload holds `traces` episodes
(default 1), each an independent trace from SeedSequence(seed, episode, crc32(source)). A file path is
relative to the problem folder unless absolute; a file is one episode. `start` is the region the job
starts in (an index or a zone name).
"""
from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluators.base import ConfigError
from evaluators.params import parse_params
from evaluators.spot.availability import DEFAULT_SHAPE, Availability, generate, load
from evaluators.spot.simulator import Job
from evaluators.spot.zones import MULTI_REGIONS, ON_DEMAND_PRICE, SINGLE_ZONES, SPOT_PRICE

MULTI_SET = "v100x9"
MAX_TRACES = 64


@dataclass(frozen=True)
class Settings:
    """Evaluator params (problem.toml [evaluator.params]); `multi` and `problem_dir` are set by the adapter."""

    multi: bool = False
    tick_s: int = 600
    work_h: float = 48.0
    on_demand_price: float = ON_DEMAND_PRICE
    spot_price: float = SPOT_PRICE      # single region: generated zones and trace files
    horizon_h: float = 0.0              # length of generated traces; 0: just the deadline
    shape: float = DEFAULT_SHAPE        # Weibull shape of up/down period lengths
    problem_dir: str = ""

    @staticmethod
    def from_params(params: Mapping[str, Any], multi: bool, problem_dir: Path | str = "") -> "Settings":
        s = parse_params(Settings, params, "spot", multi=multi, problem_dir=str(problem_dir))
        if s.tick_s <= 0 or s.shape <= 0 or s.work_h <= 0:
            raise ConfigError("tick_s, shape and work_h must be positive")
        return s


@dataclass(frozen=True)
class Workload:
    id: str
    job: Job
    episodes: tuple[Availability, ...]
    start_region: int


def _hours(key: str, text: str, wid: str) -> int:
    try:
        h = float(text)
    except ValueError:
        raise ConfigError(f"workload '{wid}': {key} must be hours, got '{text}'") from None
    if not math.isfinite(h) or h < 0:
        raise ConfigError(f"workload '{wid}': {key} must be finite and not negative")
    return round(h * 3600)


def _int(key: str, text: str, wid: str, low: int, high: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise ConfigError(f"workload '{wid}': {key} must be an integer, got '{text}'") from None
    if not low <= v <= high:
        raise ConfigError(f"workload '{wid}': {key} must be in {low}..{high}")
    return v


def _fields(wid: str) -> tuple[str, dict[str, str]]:
    source, *parts = wid.split(":")
    fields: dict[str, str] = {}
    for p in parts:
        k, sep, v = p.partition("=")
        if not sep or not v or k in fields:
            raise ConfigError(f"workload '{wid}': '{p}' is not key=value (or repeats a key)")
        fields[k] = v
    return source, fields


@functools.lru_cache(maxsize=256)   # checked at spec load, then scored for every program: generate once
def parse_workload(wid: str, s: Settings) -> Workload:
    source, f = _fields(wid)
    is_file = source.startswith("file=")
    allowed = {"deadline", "overhead"} | ({"prices"} if is_file else {"seed", "traces"}) | ({"start"} if s.multi else set())
    unknown = sorted(set(f) - allowed)
    missing = sorted({"deadline", "overhead"} - set(f) | ({"seed"} - set(f) if not is_file else set()))
    if unknown or missing:
        raise ConfigError(f"workload '{wid}': " + "; ".join(
            ([f"unknown key(s) {', '.join(unknown)}"] if unknown else []) + ([f"missing {', '.join(missing)}"] if missing else []))
            + f" (keys: {', '.join(sorted(allowed))})")
    job = Job(round(s.work_h * 3600), _hours("deadline", f["deadline"], wid), _hours("overhead", f["overhead"], wid),
              s.tick_s, s.on_demand_price)
    episodes = _file_episode(source[5:], f, s, wid) if is_file else _generated(source, f, s, job, wid)
    names = episodes[0].names
    start = _start(f.get("start", "0"), names, wid)
    for ep in episodes:
        if ep.ticks < job.max_ticks:
            raise ConfigError(f"workload '{wid}': {ep.source} has {ep.ticks} ticks of {s.tick_s} s; the "
                              f"{job.deadline_s / 3600:g} h deadline needs {job.max_ticks}")
    return Workload(wid, job, episodes, start)


def _generated(source: str, f: dict[str, str], s: Settings, job: Job, wid: str) -> tuple[Availability, ...]:
    if s.multi:
        if source != MULTI_SET:
            raise ConfigError(f"workload '{wid}': the region set must be '{MULTI_SET}' or file=<path>")
        zones = MULTI_REGIONS
    else:
        if source not in SINGLE_ZONES:
            raise ConfigError(f"workload '{wid}': unknown zone '{source}' (zones: {', '.join(SINGLE_ZONES)}; "
                              f"or file=<path>)")
        z = SINGLE_ZONES[source]
        zones = (type(z)(z.name, z.mean_up_h, z.mean_down_h, s.spot_price),)
    seed = _int("seed", f["seed"], wid, 0, 2**63 - 1)
    traces = _int("traces", f.get("traces", "1"), wid, 1, MAX_TRACES)
    horizon_s = max(job.deadline_s, round(s.horizon_h * 3600))
    ticks = math.ceil(horizon_s / s.tick_s)
    salt = zlib.crc32(source.encode())
    return tuple(generate(zones, ticks, s.tick_s, (seed, i, salt), s.shape, f"{source} seed {seed} trace {i}")
                 for i in range(traces))


def _file_episode(path_text: str, f: dict[str, str], s: Settings, wid: str) -> tuple[Availability, ...]:
    path = Path(path_text)
    if not path.is_absolute() and s.problem_dir:
        path = Path(s.problem_dir) / path
    if "prices" in f:
        try:
            prices = tuple(float(x) for x in f["prices"].split("/"))
        except ValueError:
            raise ConfigError(f"workload '{wid}': prices must be numbers separated by '/'") from None
        if not all(math.isfinite(p) and p >= 0 for p in prices):
            raise ConfigError(f"workload '{wid}': prices must be finite and not negative")
    elif s.multi:
        prices = tuple(z.spot_price for z in MULTI_REGIONS)
    else:
        prices = (s.spot_price,)
    avail = load(path, s.tick_s, prices, None if s.multi else 1)
    if s.multi and "prices" not in f and avail.regions != len(MULTI_REGIONS):
        raise ConfigError(f"workload '{wid}': {path} has {avail.regions} regions; give prices=<p1>/<p2>/... "
                          f"(the default prices are for the {len(MULTI_REGIONS)} built-in regions)")
    if any(p > s.on_demand_price for p in avail.spot_prices):
        raise ConfigError(f"workload '{wid}': a spot price above the on-demand price ${s.on_demand_price}/h")
    return (avail,)


def _start(text: str, names: tuple[str, ...], wid: str) -> int:
    if text in names:
        return names.index(text)
    return _int("start", text, wid, 0, len(names) - 1)
