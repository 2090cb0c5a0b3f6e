"""cloudcast: the cost model and the bound against hand-computed cases, every validation rule, the generator's
calibration, the held-out ordering (Steiner overlays 25-40% cheaper than direct paths), and
the attack set through the real local sandbox. Workload ids and user files: test_cloudcast_workloads.py."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

from evaluators.base import InvalidOutput
from evaluators.cloudcast import make_evaluator
from evaluators.cloudcast import regions as rg
from evaluators.cloudcast.bound import closure, lower_bound, steiner_price
from evaluators.cloudcast.cost_model import plan_cost
from evaluators.cloudcast.generator import GenParams, generate
from evaluators.cloudcast.graph import Graph, Transfer
from evaluators.cloudcast.validate import validate
from evolve import problem
from sandbox.inprocess import InProcessCandidate
from tests import attacks
from tests.attacks import fails, no_gain
from tests.conftest import ROOT

PROBLEM = ROOT / "problems" / "cloudcast"
QUICK = "inter:seed50"


@pytest.fixture(scope="module")
def spec():
    return problem.load(PROBLEM)


@pytest.fixture(scope="module")
def evaluator(spec):
    return spec.make_evaluator()


def small() -> tuple[Graph, Transfer]:
    """S=0 sends to A=2 and B=3; the relay R=1 is a cheap fan-out point.
    S->R $0.10, R->A $0.01, R->B $0.01, S->A $0.08, S->B $0.08 (no edge A->B)."""
    edges = [(0, 1, 0.10, 4.0), (1, 2, 0.01, 8.0), (1, 3, 0.01, 8.0), (0, 2, 0.08, 2.0), (0, 3, 0.08, 2.0)]
    g = Graph(("aws:s", "aws:r", "gcp:a", "gcp:b"), ("aws", "aws", "gcp", "gcp"),
              ingress_gbps=np.array([20.0, 20.0, 3.0, 20.0]), egress_gbps=np.array([10.0, 10.0, 10.0, 10.0]),
              vms=np.array([2, 2, 2, 2]), usd_per_vm_hour=np.array([0.5, 0.5, 0.5, 0.5]),
              edge_src=np.array([e[0] for e in edges]), edge_dst=np.array([e[1] for e in edges]),
              price_per_gb=np.array([e[2] for e in edges]), throughput_gbps=np.array([e[3] for e in edges]))
    return g, Transfer(0, (2, 3), data_gb=100.0, partitions=4)


# ---------------------------------------------------------------- cost model and bound, by hand

def test_shared_edge_is_paid_once_per_partition():
    g, t = small()
    tree = [[[0, 1, 2]] * 4, [[0, 1, 3]] * 4]
    c = plan_cost(g, t, validate(tree, g, t).partitions_per_edge)
    # every partition (25 GB) crosses S->R once, then R->A and R->B: 100 GB x (0.10 + 0.01 + 0.01)
    assert c.egress_usd == pytest.approx(12.0)
    # S->R carries 800 Gb at 4 Gbps = 200 s; S's egress 800/10 = 80 s; A's ingress 800/3 = 267 s (the max)
    assert c.transfer_s == pytest.approx(800 / 3)
    assert "ingress cap of gcp:a" in c.bottleneck
    assert c.regions_used == 4
    assert c.instance_usd == pytest.approx(4 * 2 * 0.5 * (800 / 3) / 3600)


def test_direct_paths_and_mixed_partitions():
    g, t = small()
    direct = [[[0, 2]] * 4, [[0, 3]] * 4]
    c = plan_cost(g, t, validate(direct, g, t).partitions_per_edge)
    assert c.egress_usd == pytest.approx(16.0)               # 2 x 100 GB x $0.08
    assert c.transfer_s == pytest.approx(800 / 2)            # S->A carries 800 Gb at 2 Gbps (S's cap: 160 s)
    assert "edge aws:s -> gcp:a" in c.bottleneck
    assert c.regions_used == 3                               # the relay is idle and not paid
    # half the partitions over the relay, half direct: 50 GB x 0.12 + 2 x 50 GB x 0.08
    mixed = [[[0, 1, 2]] * 2 + [[0, 2]] * 2, [[0, 1, 3]] * 2 + [[0, 3]] * 2]
    m = plan_cost(g, t, validate(mixed, g, t).partitions_per_edge)
    assert m.egress_usd == pytest.approx(6.0 + 8.0)
    # S->A carries 400 Gb at 2 Gbps = 200 s; S sends 1200 Gb at 10 Gbps = 120 s; A still takes in 800 Gb at 3
    assert m.transfer_s == pytest.approx(800 / 3)


def test_bound_is_the_exact_steiner_price_and_below_every_plan():
    g, t = small()
    assert steiner_price(closure(g), 0, (2, 3)) == pytest.approx(0.12)  # the relay tree, not 2 x 0.08
    b = lower_bound(g, t)
    assert b.exact and b.egress_usd == pytest.approx(12.0)
    assert b.transfer_s == pytest.approx(800 / 3)    # A must take in 800 Gb through 3 Gbps
    assert b.instance_usd == pytest.approx(3 * 2 * 0.5 * (800 / 3) / 3600)   # S, A, B at least
    for plan in ([[[0, 1, 2]] * 4, [[0, 1, 3]] * 4], [[[0, 2]] * 4, [[0, 3]] * 4]):
        assert b.total_usd <= plan_cost(g, t, validate(plan, g, t).partitions_per_edge).total_usd + 1e-9


def test_steiner_price_matches_brute_force_on_random_small_graphs():
    import itertools
    rng = np.random.default_rng(3)
    for _ in range(5):
        n = 6
        dist = np.full((n, n), np.inf)
        np.fill_diagonal(dist, 0)
        arcs = [(u, v) for u in range(n) for v in range(n) if u != v and rng.random() < 0.6]
        price = {a: float(rng.uniform(0.01, 0.2)) for a in arcs}
        g = Graph(tuple(f"aws:{i}" for i in range(n)), ("aws",) * n, np.ones(n), np.ones(n), np.ones(n, dtype=int),
                  np.ones(n), np.array([a[0] for a in arcs]), np.array([a[1] for a in arcs]),
                  np.array([price[a] for a in arcs]), np.ones(len(arcs)))
        d = closure(g)
        terms = (3, 4, 5)
        if not np.isfinite(d[0, list(terms)]).all():
            continue
        # brute force: the cheapest arc subset in which every terminal is reachable from 0
        best = np.inf
        for k in range(1, 8):
            for sub in itertools.combinations(arcs, k):
                cost = sum(price[a] for a in sub)
                if cost >= best:
                    continue
                seen, frontier = {0}, [0]
                while frontier:
                    frontier = [v for (u, v) in sub if u in frontier and v not in seen]
                    seen.update(frontier)
                if set(terms) <= seen:
                    best = cost
        assert steiner_price(d, 0, terms) == pytest.approx(best)


# ---------------------------------------------------------------- validation

def _broken(kind: str):
    good = [[[0, 1, 2]] * 4, [[0, 1, 3]] * 4]
    if kind == "not_list":
        return {"paths": good, "cost_usd": 0.0}
    if kind == "skips_destination":
        return good[:1]
    if kind == "extra_entry":
        return good + [0.0]
    if kind == "few_partitions":
        return [good[0][:3], good[1]]
    bad = [list(good[0]), list(good[1])]
    bad[1][2] = {"too_short": [0], "float_region": [0, 1.0, 3], "bool_region": [0, True, 3],
                 "out_of_range": [0, 9, 3], "negative": [0, -1, 3], "wrong_start": [1, 3],
                 "wrong_end": [0, 1, 2], "cycle": [0, 1, 0, 3], "no_edge": [0, 2, 3],
                 "not_a_list": "0,1,3", "float_array": np.array([0.0, 1.0, 3.0])}[kind]
    return bad


@pytest.mark.parametrize("kind,message", [
    ("not_list", r"one entry per destination \(2\), got dict"), ("skips_destination", "got a list of 1"),
    ("extra_entry", "got a list of 3"), ("few_partitions", r"destination 0 \(gcp:a\): needs one path per partition"),
    ("too_short", "partition 2: a path must be a list of at least 2"),
    ("float_region", r"partition 2, position 1: 1.0 is not a region index .*rule 'region'"),
    ("bool_region", "True is not a region index"), ("out_of_range", "9 is not a region index"),
    ("negative", "-1 is not a region index"),
    ("wrong_start", r"destination 1 \(gcp:b\), partition 2: starts at aws:r, not the source aws:s .*'start'"),
    ("wrong_end", r"ends at gcp:a, not at gcp:b .*'end'"), ("cycle", "visits aws:s twice .*'cycle'"),
    ("no_edge", r"destination 1 \(gcp:b\), partition 2, hop 1: no edge gcp:a -> gcp:b .*rule 'edge'"),
    ("not_a_list", "a path must be a list"), ("float_array", "1-D list of region indices"),
])
def test_validation_rejects(kind, message):
    g, t = small()
    with pytest.raises(InvalidOutput, match=message):
        validate(_broken(kind), g, t)


def test_numpy_paths_are_accepted():
    g, t = small()
    plan = validate([[np.array([0, 1, 2])] * 4, [np.array([0, 3], dtype=np.int32)] * 4], g, t)
    assert plan.paths[1][0] == (0, 3) and plan.partitions_per_edge.tolist() == [4, 4, 0, 0, 4]


# ---------------------------------------------------------------- generator calibration and determinism

def test_generated_graph_matches_the_published_ranges():
    w = generate("x", GenParams(seed=7))
    g = w.graph
    assert g.size == 71 and set(g.providers) == set(rg.PROVIDERS)
    assert 0.01 <= g.price_per_gb.min() and g.price_per_gb.max() <= 0.19
    per_pair = g.throughput_gbps / rg.VMS_PER_REGION
    assert per_pair.min() >= 0.33 - 1e-3 and per_pair.max() <= 67 + 1e-3
    prov = np.array(g.providers)
    same = prov[g.edge_src] == prov[g.edge_dst]
    assert g.price_per_gb[same].mean() < g.price_per_gb[~same].mean()      # own backbone is cheaper
    metro = {m.name: m for m in rg.METROS}
    km = np.array([rg.distance_km(metro[g.names[u].split(":")[1]], metro[g.names[v].split(":")[1]])
                   for u, v in zip(g.edge_src, g.edge_dst)])
    assert np.corrcoef(km, np.log(g.throughput_gbps))[0, 1] < -0.5           # slower over long distances
    near = km < 1500
    assert np.median(g.throughput_gbps[same & near]) > np.median(g.throughput_gbps[~same & near])
    pairs = set(g.edge_index)
    assert all((v, u) in pairs for u, v in pairs)                           # links go both ways
    assert len(pairs) < g.size * (g.size - 1)                               # but not every pair is linked
    assert len(w.transfer.destinations) == 6 and w.transfer.data_gb == 300 and w.transfer.partitions == 10
    assert {prov[d] for d in w.transfer.destinations} == set(rg.PROVIDERS)  # inter: every provider


def test_intra_mode_keeps_the_provider():
    w = generate("x", GenParams(seed=4, mode="intra-gcp"))
    assert {w.graph.providers[r] for r in (w.transfer.source, *w.transfer.destinations)} == {"gcp"}


def test_generator_is_deterministic_and_seeds_differ():
    a, b, c = (generate("x", GenParams(seed=s)) for s in (1, 1, 2))
    assert a.graph.names == b.graph.names and np.array_equal(a.graph.throughput_gbps, b.graph.throughput_gbps)
    assert a.transfer == b.transfer
    assert a.graph.names != c.graph.names or a.transfer != c.transfer


def test_evaluation_is_deterministic(evaluator):
    src = (PROBLEM / "baselines/steiner.py").read_text()
    m1 = evaluator.evaluate(InProcessCandidate(src), QUICK).metrics
    m2 = make_evaluator({}, PROBLEM).evaluate(InProcessCandidate(src), QUICK).metrics
    m1.pop("decision_s", None), m2.pop("decision_s", None)
    assert m1 == m2


def test_train_and_held_out_seeds_disjoint(spec):
    def seeds(ids):
        return {w.split("seed")[1].split(":")[0] for w in ids if "seed" in w}
    assert not seeds(spec.workloads.train) & seeds(spec.workloads.held_out)
    assert not seeds(spec.workloads.quick) & seeds(spec.workloads.held_out)


# ---------------------------------------------------------------- every program, and the held-out ordering

@pytest.mark.slow
def test_every_program_valid_on_every_workload(spec, evaluator):
    ids = sorted(set(spec.workloads.train) | set(spec.workloads.held_out) | set(spec.workloads.quick))
    for path in [PROBLEM / spec.entry.file] + [PROBLEM / rel for rel in spec.baselines.values()]:
        cand = InProcessCandidate.from_file(path)
        for wid in ids:
            m = evaluator.evaluate(cand, wid).metrics
            assert 0 < m["score"] <= 1, (path.name, wid)
            assert m["cost_usd"] >= m["lower_bound_usd"] - 1e-9
            assert m["cost_usd"] == pytest.approx(m["egress_usd"] + m["instance_usd"])


def _held_out_costs(spec, evaluator, name: str) -> dict[str, dict[str, float]]:
    cand = InProcessCandidate.from_file(PROBLEM / spec.baselines[name])
    return {wid: evaluator.evaluate(cand, wid).metrics for wid in spec.workloads.held_out}


def test_steiner_is_25_to_40_percent_cheaper_than_direct_on_held_out(spec, evaluator):
    """ADRS reports Steiner overlays 30-38% cheaper than direct paths, cost summed over its configurations."""
    direct = _held_out_costs(spec, evaluator, "direct")
    steiner = _held_out_costs(spec, evaluator, "steiner")
    saving = 1 - sum(m["cost_usd"] for m in steiner.values()) / sum(m["cost_usd"] for m in direct.values())
    assert 0.25 <= saving <= 0.40, saving
    # never worse by more than noise on any single workload, and far better on inter-provider ones
    for wid in spec.workloads.held_out:
        assert steiner[wid]["cost_usd"] <= direct[wid]["cost_usd"] * 1.02, wid
        assert steiner[wid]["score"] >= direct[wid]["score"] - 0.02, wid
    inter = [w for w in spec.workloads.held_out if w.startswith("inter")]
    assert np.mean([1 - steiner[w]["cost_usd"] / direct[w]["cost_usd"] for w in inter]) > 0.2


# ---------------------------------------------------------------- the attack set, through the real sandbox

DIRECT = textwrap.dedent("""
    import networkx as nx
    def _plan(src, dsts, graph, num_partitions):
        g = nx.DiGraph()
        g.add_weighted_edges_from(zip(graph["edge_src"].tolist(), graph["edge_dst"].tolist(),
                                      graph["price_per_gb"].tolist()), weight="price")
        return [[nx.dijkstra_path(g, src, d, weight="price")] * num_partitions for d in dsts]
    """)
SIG = DIRECT + "def search_algorithm(src, dsts, graph, num_partitions):\n"
CHEAPEST_PATHS = "    return _plan(src, dsts, graph, num_partitions)\n"
ATTACKS = {
    **attacks.shared(SIG, CHEAPEST_PATHS, "rule 'format'"),
    # reading files: refused by the sandbox, or at least never a valid plan
    "returns_a_file": fails("def search_algorithm(src, dsts, graph, num_partitions):\n"
                            "    n = len(open('/etc/passwd').read())\n"
                            "    return [[[src, n]] * num_partitions for d in dsts]\n",
                            ("exception", "invalid_output", "timeout")),
    "nonexistent_edge": fails(textwrap.dedent("""
        def search_algorithm(src, dsts, graph, num_partitions):
            linked = set(zip(graph["edge_src"].tolist(), graph["edge_dst"].tolist()))
            far = [d for d in dsts if (src, d) not in linked][0]   # no direct link: jump there anyway
            return [[[src, d]] * num_partitions for d in dsts]
        """), "invalid_output", "rule 'edge'"),
    "skips_destination": fails(SIG + "    return _plan(src, dsts[:-1], graph, num_partitions)\n",
                               "invalid_output", "got a list of 5"),
    "ends_elsewhere": fails(SIG + "    return _plan(src, [dsts[0]] * len(dsts), graph, num_partitions)\n",
                            "invalid_output", "rule 'end'"),
    "reports_own_cost": fails(SIG + "    return {'paths': _plan(src, dsts, graph, num_partitions), 'cost_usd': 0.0, "
                              "'score': 1.0}\n", "invalid_output", "rule 'format'"),
    # zeroes the prices and drops regions it was sent: it still pays the trusted prices
    "edits_its_input": no_gain(DIRECT + textwrap.dedent("""
        def search_algorithm(src, dsts, graph, num_partitions):
            plan = _plan(src, dsts, graph, num_partitions)
            for key in ("price_per_gb", "throughput_gbps", "egress_gbps", "ingress_gbps"):
                try:
                    graph[key][:] = 0.0 if key == "price_per_gb" else 1e9
                except ValueError:      # the arrays it is sent are read-only
                    graph[key] = graph[key] * 0
            graph["names"].clear()
            graph["data_gb"] = 0.0
            return plan
        """), refused=()),
}


bench = attacks.bench_fixture(PROBLEM, QUICK)


@pytest.fixture(scope="module")
def honest(bench):
    """Cheapest paths, honestly returned: what every no-gain attack must not beat."""
    m = bench.metrics(SIG + CHEAPEST_PATHS)
    assert m["cost_usd"] > 0
    return m


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_are_recorded_with_a_reason_or_gain_nothing(bench, honest, name):
    ATTACKS[name].check(bench.score(ATTACKS[name].source), honest, ("score", "cost_usd"))
