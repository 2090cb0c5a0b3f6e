"""User-supplied graphs: a CSV of edges or a JSON of regions, edges and the transfer. Errors name the file,
the line (CSV) or element (JSON), and the field.

CSV (one edge per line, Skyplane-style region names `provider:region`):
    src,dst,price_per_gb,throughput_gbps
    aws:us-east-1,gcp:us-central1,0.09,6.2
  Regions are the names the edges use; their provider (the part before ':', one of aws/gcp/azure) sets the
  per-VM limits; every region runs VMS_PER_REGION VMs at USD_PER_VM_HOUR. The transfer comes from the
  workload id (src= and dsts= required; gb= and parts= default to 300 GB in 10 partitions).
JSON:
    {"regions": [{"name", "provider", "ingress_gbps_per_vm"?, "egress_gbps_per_vm"?, "vms"?, "usd_per_vm_hour"?}],
     "edges": [{"src", "dst", "price_per_gb", "throughput_gbps"}],
     "transfer": {"source", "destinations", "data_gb"?, "partitions"?}}
  `regions` may be left out or partial (unlisted regions as for CSV); options in the id override `transfer`.
throughput_gbps is per VM pair, as profiled; an edge carries min(vms of its ends) times that.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluators.base import ConfigError
from evaluators.cloudcast import regions as rg
from evaluators.cloudcast.graph import Graph, Transfer, Workload, check_transfer
from evaluators.cloudcast.workload_id import FileRef

CSV_FIELDS = ("src", "dst", "price_per_gb", "throughput_gbps")
DEFAULT_GB, DEFAULT_PARTS = 300.0, 10


@dataclass
class _Region:
    provider: str
    ingress: float
    egress: float
    vms: int
    usd: float


@dataclass(frozen=True)
class _Edge:
    src: str
    dst: str
    price: float
    tput: float
    where: str  # "line 7" or "edges[3]"


def _number(raw: Any, where: str, field: str, positive: bool) -> float:
    try:
        x = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}, field '{field}': {raw!r} is not a number") from None
    if isinstance(raw, bool) or not math.isfinite(x) or x < 0 or (positive and x == 0):
        raise ConfigError(f"{where}, field '{field}': must be a finite number {'> 0' if positive else '>= 0'}")
    return x


def _default_region(name: str, where: str) -> _Region:
    provider = name.split(":", 1)[0]
    if provider not in rg.VM_LIMITS:
        raise ConfigError(f"{where}: region '{name}' has no known provider prefix ({', '.join(rg.PROVIDERS)}); "
                          f"give its limits in a JSON 'regions' entry")
    lim = rg.VM_LIMITS[provider]
    return _Region(provider, lim.ingress_gbps, lim.egress_gbps, rg.VMS_PER_REGION, rg.USD_PER_VM_HOUR)


def _read_csv(path: Path) -> list[_Edge]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        header = tuple(reader.fieldnames or ())
        if sorted(header) != sorted(CSV_FIELDS):
            raise ConfigError(f"{path}, line 1: header must have the fields {', '.join(CSV_FIELDS)}, got "
                              f"{', '.join(header) or 'nothing'}")
        edges = []
        for row in reader:
            where = f"{path}, line {reader.line_num}"
            if None in row or any(v is None for v in row.values()):
                raise ConfigError(f"{where}: expected {len(CSV_FIELDS)} fields")
            edges.append(_edge(row, where))
    return edges


def _edge(row: dict, where: str) -> _Edge:
    for key in ("src", "dst"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise ConfigError(f"{where}, field '{key}': must be a region name")
    src, dst = row["src"].strip(), row["dst"].strip()
    if src == dst:
        raise ConfigError(f"{where}, field 'dst': an edge from {src} to itself")
    return _Edge(src, dst, _number(row.get("price_per_gb"), where, "price_per_gb", False),
                 _number(row.get("throughput_gbps"), where, "throughput_gbps", True), where)


def _read_json(path: Path) -> tuple[list[_Edge], dict[str, _Region], dict]:
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}, line {e.lineno}: not valid JSON: {e.msg}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("edges"), list):
        raise ConfigError(f"{path}: field 'edges': the document must be an object with a list of edges")
    edges = []
    for i, row in enumerate(doc["edges"]):
        if not isinstance(row, dict):
            raise ConfigError(f"{path}, edges[{i}]: must be an object {{src, dst, price_per_gb, throughput_gbps}}")
        edges.append(_edge(row, f"{path}, edges[{i}]"))
    regions: dict[str, _Region] = {}
    for i, row in enumerate(doc.get("regions", [])):
        where = f"{path}, regions[{i}]"
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            raise ConfigError(f"{where}, field 'name': each region needs a name")
        base = _default_region(row["name"], where) if "provider" not in row else None
        provider = row.get("provider", base.provider if base else "")
        lim = rg.VM_LIMITS.get(provider)
        get = lambda f, d: _number(row[f], where, f, True) if f in row else d  # noqa: E731
        if lim is None and not {"ingress_gbps_per_vm", "egress_gbps_per_vm"} <= set(row):
            raise ConfigError(f"{where}, field 'provider': '{provider}' is unknown; give ingress_gbps_per_vm and "
                              f"egress_gbps_per_vm")
        vms = get("vms", rg.VMS_PER_REGION)
        if vms != int(vms):
            raise ConfigError(f"{where}, field 'vms': must be a whole number")
        regions[row["name"]] = _Region(str(provider), get("ingress_gbps_per_vm", lim.ingress_gbps if lim else 0),
                                       get("egress_gbps_per_vm", lim.egress_gbps if lim else 0), int(vms),
                                       _number(row.get("usd_per_vm_hour", rg.USD_PER_VM_HOUR), where,
                                               "usd_per_vm_hour", False))
    transfer = doc.get("transfer", {})
    if not isinstance(transfer, dict):
        raise ConfigError(f"{path}, field 'transfer': must be an object")
    return edges, regions, transfer


def _graph(edges: list[_Edge], regions: dict[str, _Region]) -> Graph:
    names = list(regions)
    for e in edges:
        for n in (e.src, e.dst):
            if n not in regions:
                regions[n] = _default_region(n, e.where)
                names.append(n)
    seen: dict[tuple[str, str], str] = {}
    for e in edges:
        if (e.src, e.dst) in seen:
            raise ConfigError(f"{e.where}: edge {e.src} -> {e.dst} already given at {seen[(e.src, e.dst)]}")
        seen[(e.src, e.dst)] = e.where
    idx = {n: i for i, n in enumerate(names)}
    reg = [regions[n] for n in names]
    vms = np.array([r.vms for r in reg], dtype=np.int64)
    src = np.array([idx[e.src] for e in edges], dtype=np.int64)
    dst = np.array([idx[e.dst] for e in edges], dtype=np.int64)
    return Graph(tuple(names), tuple(r.provider for r in reg), vms * np.array([r.ingress for r in reg]),
                 vms * np.array([r.egress for r in reg]), vms, np.array([r.usd for r in reg]), src, dst,
                 np.array([e.price for e in edges]),
                 np.array([e.tput for e in edges]) * np.minimum(vms[src], vms[dst]))


def _transfer(graph: Graph, spec: dict, options: dict[str, str], where: str) -> Transfer:
    src = options.get("src", spec.get("source"))
    dsts = options["dsts"].split(",") if "dsts" in options else spec.get("destinations")
    if not isinstance(src, str) or not isinstance(dsts, list) or not all(isinstance(d, str) for d in dsts):
        raise ConfigError(f"{where}: the transfer needs a source and a list of destinations (src=, dsts= in the "
                          f"workload id, or the JSON 'transfer' object)")
    try:
        gb = float(options.get("gb", spec.get("data_gb", DEFAULT_GB)))
        parts = int(options.get("parts", spec.get("partitions", DEFAULT_PARTS)))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: data_gb / partitions: {e}") from None
    try:
        t = Transfer(graph.index_of(src), tuple(graph.index_of(d) for d in dsts), gb, parts)
    except ConfigError as e:
        raise ConfigError(f"{where}: transfer: {e}") from None
    check_transfer(graph, t, where)
    return t


def load(wid: str, ref: FileRef) -> Workload:
    if ref.path.suffix.lower() == ".csv":
        edges, regions, spec = _read_csv(ref.path), {}, {}
    elif ref.path.suffix.lower() == ".json":
        edges, regions, spec = _read_json(ref.path)
    else:
        raise ConfigError(f"workload id '{wid}': {ref.path.name} must be a .csv or .json graph")
    if not edges:
        raise ConfigError(f"{ref.path}: no edges")
    graph = _graph(edges, regions)
    return Workload(wid, graph, _transfer(graph, spec, ref.options, str(ref.path)))
