"""Workload ids of the serving problems: a generated workload or a trace file, as one string.

Generated (keys in any order, each at most once; seed and one of n/dur required):

    <kind>:seed=<S>:n=<N>[:load=<L> | :rate=<R>][:cv=<C>][:burst=<B>[:on=<s>][:off=<s>]][:clients=<K>]
    <kind>:seed=<S>:dur=<seconds>...                       (everything arriving in [0, seconds))
    kind: azure-conv | azure-code | sharegpt | mooncake | agent;  sharegpt also :think=<s>, mooncake also
    :share=<p> and :hotburst=<p>

    e.g.  azure-conv:seed=3:load=0.8:cv=2:n=2000      mooncake:seed=4:n=400:share=0.95

`load` is the offered rate as a fraction of a capacity the caller measures (the id cannot know it), so it
is returned as a field and resolved by `GeneratedSpec.rate(capacity_rps)`; `rate` is an absolute rate in
requests/s. A problem that sets load levels itself (llm_scheduler's `@0.5,1.0`) leaves both out and calls
`requests(rate)` per level: regenerating at each rate keeps burst periods and think times in seconds, which
rescaling one workload's arrival times would not.

Traces (the options after the path, in any order):

    trace:<azure|mooncake|burstgpt>:<PATH>[:n=<N>][:speed=<X>]

PATH is relative to the problem folder unless absolute; n keeps the first N requests; speed=X makes arrivals
X times faster (2 = twice the rate).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

from evaluators.base import ConfigError
from evaluators.serving.arrivals import Burst
from evaluators.serving.requests import Requests
from evaluators.serving.traces import FORMATS, Trace, load_trace
from evaluators.serving.workloads import KINDS, GenParams, make_requests

# key -> (type, meaning) for generated ids; kind-specific keys are listed per kind
_GEN_KEYS = {"seed": int, "n": int, "dur": float, "load": float, "rate": float, "cv": float,
             "burst": float, "on": float, "off": float, "clients": int}
_KIND_KEYS = {"sharegpt": {"think": float}, "mooncake": {"share": float, "hotburst": float}}
_TRACE_KEYS = {"n": int, "speed": float}
_OPTION = re.compile(r"([a-z]+)=(.*)")


@dataclass(frozen=True)
class GeneratedSpec:
    """A parsed generated-workload id. The rate is left to the caller (see rate())."""

    id: str
    kind: str
    seed: int
    n_requests: int | None
    duration_s: float | None
    load: float | None        # fraction of the caller's measured capacity
    rate_per_s: float | None  # absolute requests/s
    cv: float = 1.0
    burst: Burst | None = None
    clients: int = 1
    extra: tuple[tuple[str, float], ...] = ()   # GenParams fields of kind-specific keys

    def rate(self, capacity_rps: float | None = None) -> float:
        """The id's rate: `rate`, or `load` x the caller's capacity."""
        if self.rate_per_s is not None:
            return self.rate_per_s
        if self.load is None:
            raise ConfigError(f"workload '{self.id}' names no load= or rate=; the caller must choose a rate")
        if capacity_rps is None or not capacity_rps > 0:
            raise ConfigError(f"workload '{self.id}': load={self.load:g} needs a measured capacity > 0")
        return self.load * capacity_rps

    def params(self, rate_per_s: float) -> GenParams:
        return GenParams(self.kind, rate_per_s, self.n_requests, self.duration_s, self.cv, self.seed,
                         self.burst, self.clients, **dict(self.extra))

    def requests(self, rate_per_s: float) -> Requests:
        return replace(make_requests(self.params(rate_per_s)), name=self.id)


@dataclass(frozen=True)
class TraceSpec:
    """A parsed trace id: the file resolved against the problem folder, and the window to take."""

    id: str
    fmt: str
    path: Path
    n_requests: int | None = None
    speed: float = 1.0
    seed: int = 0   # traces fix everything; 0 seeds whatever the caller draws for them (e.g. predictions)

    def load(self) -> Trace:
        trace = load_trace(self.fmt, self.path, limit=self.n_requests)
        r = trace.requests
        return replace(trace, requests=replace(r, arrival_s=r.arrival_s / self.speed, name=self.id))


def parse_workload_id(wid: str, problem_dir: Path | None = None) -> GeneratedSpec | TraceSpec:
    """Parse a serving workload id; ConfigError says what is wrong and what is allowed."""
    head, _, rest = wid.partition(":")
    if head == "trace":
        return _parse_trace(wid, rest, problem_dir)
    if head not in KINDS:
        raise ConfigError(f"workload '{wid}': unknown kind '{head}' (known: {', '.join(KINDS)}, or "
                          f"trace:<{'|'.join(FORMATS)}>:PATH)")
    allowed = {**_GEN_KEYS, **_KIND_KEYS.get(head, {})}
    values = _options(wid, rest.split(":") if rest else [], allowed)
    return _generated(wid, head, values)


def workload_requests(wid: str, problem_dir: Path | None = None, capacity_rps: float | None = None) -> Requests:
    """The requests of any workload id: a trace as loaded, a generated workload at the id's own rate."""
    spec = parse_workload_id(wid, problem_dir)
    if isinstance(spec, TraceSpec):
        return spec.load().requests
    return spec.requests(spec.rate(capacity_rps))


def _options(wid: str, parts: list[str], allowed: dict[str, type]) -> dict[str, float | int]:
    values: dict[str, float | int] = {}
    for part in parts:
        m = _OPTION.fullmatch(part)
        if m is None or m.group(1) not in allowed:
            raise ConfigError(f"workload '{wid}': bad part '{part}' (expected key=value with key one of: "
                              f"{', '.join(allowed)})")
        key, text = m.groups()
        if key in values:
            raise ConfigError(f"workload '{wid}': '{key}' given twice")
        values[key] = _value(wid, key, text, allowed[key])
    return values


def _value(wid: str, key: str, text: str, kind: type) -> float | int:
    try:
        value = int(text) if kind is int else float(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"workload '{wid}': {key} must be {what}, got '{text}'") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"workload '{wid}': {key} must be finite and >= 0, got '{text}'")
    return value


def _generated(wid: str, kind: str, v: dict[str, float | int]) -> GeneratedSpec:
    if "seed" not in v:
        raise ConfigError(f"workload '{wid}': missing seed=<S>")
    if ("n" in v) == ("dur" in v):
        raise ConfigError(f"workload '{wid}': give exactly one of n=<requests> and dur=<seconds>")
    if "load" in v and "rate" in v:
        raise ConfigError(f"workload '{wid}': give load= (relative to capacity) or rate= (requests/s), not both")
    for key in ("load", "rate", "n", "dur"):
        if key in v and v[key] <= 0:
            raise ConfigError(f"workload '{wid}': {key} must be > 0")
    if ("on" in v or "off" in v) and "burst" not in v:
        raise ConfigError(f"workload '{wid}': on= and off= shape a burst; add burst=<factor>")
    try:
        burst = Burst(float(v["burst"]), float(v.get("on", 10.0)), float(v.get("off", 30.0))) if "burst" in v else None
    except ValueError as e:
        raise ConfigError(f"workload '{wid}': {e}") from None
    extra = tuple((f, float(v[k])) for k, f in (("think", "think_s"), ("share", "prefix_share"),
                                                 ("hotburst", "hot_burst")) if k in v)
    spec = GeneratedSpec(wid, kind, int(v["seed"]), int(v["n"]) if "n" in v else None,
                         float(v["dur"]) if "dur" in v else None, v.get("load"), v.get("rate"),
                         float(v.get("cv", 1.0)), burst, int(v.get("clients", 1)), extra)
    try:
        spec.params(1.0)   # the remaining range checks (cv, clients, n, ...) live with the parameters
    except ConfigError as e:
        raise ConfigError(f"workload '{wid}': {e}") from None
    return spec


def _parse_trace(wid: str, rest: str, problem_dir: Path | None) -> TraceSpec:
    fmt, _, tail = rest.partition(":")
    if fmt not in FORMATS:
        raise ConfigError(f"workload '{wid}': unknown trace format '{fmt}' (known: {', '.join(FORMATS)})")
    parts = tail.split(":") if tail else []
    options: list[str] = []
    while parts and _OPTION.fullmatch(parts[-1]):   # options trail the path (which may contain ':')
        options.insert(0, parts.pop())
    if not parts or not ":".join(parts):
        raise ConfigError(f"workload '{wid}': no file after 'trace:{fmt}:' (trace:{fmt}:PATH[:n=N][:speed=X])")
    v = _options(wid, options, _TRACE_KEYS)
    if v.get("n", 1) < 1 or v.get("speed", 1.0) <= 0:
        raise ConfigError(f"workload '{wid}': n must be >= 1 and speed > 0")
    path = Path(":".join(parts))
    if not path.is_absolute():
        path = (problem_dir or Path.cwd()) / path
    if not path.is_file():
        raise ConfigError(f"workload '{wid}': trace file not found: {path}")
    return TraceSpec(wid, fmt, path, int(v["n"]) if "n" in v else None, float(v.get("speed", 1.0)))
