"""cloudcast's workload ids and user files: bad ids, CSV and JSON graphs and transfer files with errors that
name file, line and field, the bundled example graph, the problem's params, and the candidate's copy of the
graph."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluators.base import ConfigError
from evaluators.cloudcast import make_evaluator
from evaluators.cloudcast import regions as rg
from evaluators.cloudcast.generator import GenParams, generate
from evaluators.cloudcast.graph import candidate_view
from sandbox.inprocess import InProcessCandidate
from tests.test_cloudcast import PROBLEM, evaluator, spec  # noqa: F401 - the same module-scoped fixtures


@pytest.mark.parametrize("wid,message", [
    ("ring:seed0", "must start with one of"), ("inter", "missing seed"), ("inter:seed1:foo2", "bad part"),
    ("inter:seed1:seed2", "given twice"), ("inter:seed1:regions10", "regions must be in"),
    ("intra:seed1:dsts40", "dsts must be in"), ("inter:seed1:parts0", "parts in"),
    ("file:", "no file path"), ("file:nope.csv", "file not found"),
    ("file:graphs/example.json;color=red", "bad option 'color=red'"),
])
def test_bad_workload_ids(evaluator, wid, message):
    with pytest.raises(ConfigError, match=message):
        evaluator.check_workload(wid)


def _csv(tmp_path: Path, rows: list[str], name: str = "g.csv") -> Path:
    path = tmp_path / name
    path.write_text("src,dst,price_per_gb,throughput_gbps\n" + "\n".join(rows) + "\n")
    return path


ROWS = ["aws:us-east-1,aws:us-west-2,0.02,5", "aws:us-west-2,gcp:us-west1,0.09,3",
        "aws:us-east-1,gcp:us-west1,0.09,1.5", "gcp:us-west1,azure:westus,0.12,2", "aws:us-east-1,azure:westus,0.09,1"]


def test_csv_graph_is_a_workload(tmp_path):
    path = _csv(tmp_path, ROWS)
    ev = make_evaluator({}, tmp_path)
    wid = f"file:{path};src=aws:us-east-1;dsts=gcp:us-west1,azure:westus;gb=100;parts=4"
    w, bound = ev.workload(wid)
    assert w.graph.size == 4 and w.transfer.partitions == 4 and w.transfer.data_gb == 100
    assert w.graph.egress_gbps[w.graph.index_of("aws:us-east-1")] == 2 * rg.VM_LIMITS["aws"].egress_gbps
    assert w.graph.throughput_gbps[0] == 2 * 5        # per VM pair x 2 VMs
    # cheapest overlay: us-east-1 -> us-west-2 (0.02) -> us-west1 (0.09) -> westus (0.12) vs direct 0.09 + 0.09
    assert bound.tree_price_per_gb == pytest.approx(0.18)
    m = ev.evaluate(InProcessCandidate.from_file(PROBLEM / "baselines/steiner.py"), wid).metrics
    assert 0 < m["score"] <= 1


@pytest.mark.parametrize("rows,message", [
    (["aws:a,aws:b,cheap,5"], r"g.csv, line 2, field 'price_per_gb': 'cheap' is not a number"),
    (["aws:a,aws:b,0.02,5", "aws:b,aws:a,0.02,-1"], r"line 3, field 'throughput_gbps': must be a finite number > 0"),
    (["aws:a,aws:b,0.02,5", "aws:a,aws:b,0.03,5"], r"line 3: edge aws:a -> aws:b already given at .*line 2"),
    (["aws:a,aws:a,0.02,5"], r"line 2, field 'dst': an edge from aws:a to itself"),
    (["aws:a,ibm:b,0.02,5"], r"line 2: region 'ibm:b' has no known provider prefix"),
    (["aws:a,aws:b,0.02"], r"line 2: expected 4 fields"),
])
def test_csv_errors_name_file_line_and_field(tmp_path, rows, message):
    path = _csv(tmp_path, rows)
    with pytest.raises(ConfigError, match=message):
        make_evaluator({}, tmp_path).check_workload(f"file:{path};src=aws:a;dsts=aws:b")


def test_file_transfer_errors(tmp_path):
    path = _csv(tmp_path, ROWS)
    ev = make_evaluator({}, tmp_path)
    with pytest.raises(ConfigError, match="needs a source and a list of destinations"):
        ev.check_workload(f"file:{path}")
    with pytest.raises(ConfigError, match="unknown region 'aws:mars'"):
        ev.check_workload(f"file:{path};src=aws:mars;dsts=gcp:us-west1")
    with pytest.raises(ConfigError, match="aws:us-east-1 is unreachable from gcp:us-west1"):
        ev.check_workload(f"file:{path};src=gcp:us-west1;dsts=aws:us-east-1")
    (tmp_path / "bad.csv").write_text("from,to,price\n")
    with pytest.raises(ConfigError, match="bad.csv, line 1: header must have the fields"):
        ev.check_workload("file:bad.csv;src=a;dsts=b")


def test_json_graph_errors(tmp_path):
    ev = make_evaluator({}, tmp_path)
    (tmp_path / "syntax.json").write_text('{"edges": [\n  {"src": "aws:a",}\n]}')
    with pytest.raises(ConfigError, match=r"syntax.json, line 2: not valid JSON"):
        ev.check_workload("file:syntax.json")
    doc = {"regions": [{"name": "ibm:x", "provider": "ibm"}],
           "edges": [{"src": "aws:a", "dst": "ibm:x", "price_per_gb": 0.1, "throughput_gbps": 1}],
           "transfer": {"source": "aws:a", "destinations": ["ibm:x"]}}
    (tmp_path / "g.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=r"g.json, regions\[0\], field 'provider': 'ibm' is unknown"):
        ev.check_workload("file:g.json")
    doc["regions"][0].update(ingress_gbps_per_vm=4, egress_gbps_per_vm=4, vms=3)
    doc["edges"][0]["price_per_gb"] = None
    (tmp_path / "g.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=r"edges\[0\], field 'price_per_gb': None is not a number"):
        ev.check_workload("file:g.json")
    doc["edges"][0]["price_per_gb"] = 0.1
    (tmp_path / "g.json").write_text(json.dumps(doc))
    w, _ = ev.workload("file:g.json")
    x = w.graph.index_of("ibm:x")
    assert w.graph.ingress_gbps[x] == 12 and w.graph.throughput_gbps[0] == 2   # min(2, 3) VMs x 1 Gbps


def test_bundled_example_graph_is_marked_synthetic(evaluator):
    doc = json.loads((PROBLEM / "graphs/example.json").read_text())
    assert "SYNTHETIC" in doc["_comment"]
    w, _ = evaluator.workload("file:graphs/example.json")
    assert w.graph.size == 30 and len(w.transfer.destinations) == 5


def test_params_and_spec(spec):
    with pytest.raises(ConfigError, match="unknown cloudcast param 'seed'"):
        make_evaluator({"seed": 1}, PROBLEM)
    assert spec.family == "networking" and spec.entry.function == "search_algorithm"
    assert "networkx" in spec.sandbox_packages   # the steiner baseline imports it inside the sandbox
    src = spec.initial_source()
    assert src.index("# EVOLVE-BLOCK-START") < src.index("def search_algorithm") < src.index("# EVOLVE-BLOCK-END")


def test_candidate_view_is_a_copy():
    w = generate("x", GenParams(seed=1))
    view = candidate_view(w)
    view["price_per_gb"][:] = 0
    assert w.graph.price_per_gb.min() > 0
    with pytest.raises(ValueError):
        w.graph.price_per_gb[0] = 0   # the trusted arrays are read-only
