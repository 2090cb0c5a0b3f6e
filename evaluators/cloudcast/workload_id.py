"""Workload ids: a generated graph, or a user's graph file.

    <mode>:seed<N>[:dsts<K>][:parts<P>][:gb<V>][:regions<R>][:nbr<k>]
        mode: inter (destinations spread over the providers), intra (all in the source's provider, chosen by
        the seed) or intra-aws / intra-gcp / intra-azure.
    file:<path>[;src=<region>][;dsts=<region>,<region>...][;gb=<V>][;parts=<P>]
        a CSV or JSON graph (files.py); the options override (CSV: supply) the transfer.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from evaluators.base import ConfigError
from evaluators.cloudcast.generator import MODES, GenParams

_GEN_KEYS = {"seed": "seed", "dsts": "destinations", "parts": "partitions", "gb": "data_gb", "regions": "regions",
             "nbr": "neighbours"}
_FILE_KEYS = ("src", "dsts", "gb", "parts")
REGION_RANGE = (18, 132)   # each provider needs >= 6 metros (2 in each anchor continent), at most the catalogue


@dataclass(frozen=True)
class FileRef:
    path: Path
    options: dict[str, str]


def parse(wid: str, problem_dir: Path) -> GenParams | FileRef:
    if wid.startswith("file:"):
        return _parse_file(wid, problem_dir)
    parts = wid.split(":")
    if parts[0] not in MODES:
        raise ConfigError(f"workload id '{wid}' must start with one of {', '.join(MODES)} or 'file:'")
    values: dict[str, str] = {}
    for tok in parts[1:]:
        m = re.fullmatch(r"([a-z]+)([0-9]+(?:\.[0-9]+)?)", tok)
        if not m or m.group(1) not in _GEN_KEYS:
            raise ConfigError(f"workload id '{wid}': bad part '{tok}' (expected seed<N>, dsts<K>, parts<P>, gb<V>, "
                              f"regions<R>, nbr<k>)")
        if m.group(1) in values:
            raise ConfigError(f"workload id '{wid}': '{m.group(1)}' given twice")
        values[m.group(1)] = m.group(2)
    if "seed" not in values:
        raise ConfigError(f"workload id '{wid}': missing seed<N>")
    try:
        kw = {_GEN_KEYS[k]: (float(v) if k == "gb" else int(v)) for k, v in values.items()}
    except ValueError as e:
        raise ConfigError(f"workload id '{wid}': {e}") from None
    p = GenParams(mode=parts[0], **kw)
    _check(wid, p)
    return p


def _check(wid: str, p: GenParams) -> None:
    lo, hi = REGION_RANGE
    if not lo <= p.regions <= hi:
        raise ConfigError(f"workload id '{wid}': regions must be in [{lo}, {hi}]")
    smallest = p.regions // 3
    if not 1 <= p.destinations < smallest:
        raise ConfigError(f"workload id '{wid}': dsts must be in [1, {smallest - 1}] for {p.regions} regions")
    if not 1 <= p.partitions <= 1000 or not 0 < p.data_gb <= 1e6 or not 1 <= p.neighbours:
        raise ConfigError(f"workload id '{wid}': parts in [1, 1000], gb in (0, 1e6], nbr >= 1")


def _parse_file(wid: str, problem_dir: Path) -> FileRef:
    rel, *opts = wid[len("file:"):].split(";")
    if not rel:
        raise ConfigError(f"workload id '{wid}': no file path after 'file:'")
    options: dict[str, str] = {}
    for opt in opts:
        key, eq, value = opt.partition("=")
        if not eq or key not in _FILE_KEYS or not value:
            raise ConfigError(f"workload id '{wid}': bad option '{opt}' (expected src=, dsts=, gb=, parts=)")
        options[key] = value
    path = Path(rel) if Path(rel).is_absolute() else problem_dir / rel
    if not path.is_file():
        raise ConfigError(f"workload id '{wid}': file not found: {path}")
    return FileRef(path.resolve(), options)
