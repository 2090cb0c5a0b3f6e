"""llm_sql: the hit-rate model against hand-computed cases and a brute force, validation of every broken
reordering, workloads (generated, CSV files and their errors), the held-out ordering the LLM-SQL paper
reports (GGR far above the original order), determinism, and the attack set through the real sandbox."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from evaluators.base import ConfigError, InvalidOutput
from evaluators.llm_sql import make_evaluator
from evaluators.llm_sql.generator import generate
from evaluators.llm_sql.hit_rate import common_prefix, measure
from evaluators.llm_sql.schemas import DATASETS
from evaluators.llm_sql.table import Table, cell_text
from evaluators.llm_sql.validate import serialise, validate
from evolve import problem
from sandbox.inprocess import InProcessCandidate
from tests import attacks
from tests.attacks import fails, no_gain
from tests.conftest import ROOT

PROBLEM = ROOT / "problems" / "llm_sql"
QUICK = "movies:seed50:rows300"


def _table() -> Table:
    """3 rows, 3 columns: 'k' repeats in rows 0 and 2."""
    return Table("t", ("a", "b", "c"), (("k", "x1", "long"), ("j", "x2", "long"), ("k", "x3", "long")))


# ---------------------------------------------------------------- the hit-rate model

def test_common_prefix():
    assert common_prefix("abcdef", "abcxyz") == 3
    assert common_prefix("abc", "abc") == 3
    assert common_prefix("abc", "abcd") == 3
    assert common_prefix("", "abc") == 0
    assert common_prefix("xbc", "abc") == 0


def test_hit_rate_by_hand():
    s = ["abc", "abd", "xbc", "abc"]  # 12 characters
    one = measure(s, 1)    # row 1 shares 'ab' with row 0; rows 2 and 3 share nothing with the row before
    assert one.hit_chars == 2 and one.row_hits.tolist() == [0, 2, 0, 0]
    three = measure(s, 3)  # row 3 finds row 0 three rows back: all 3 characters
    assert three.hit_chars == 5 and three.row_hits.tolist() == [0, 2, 0, 3]
    assert three.rate == pytest.approx(5 / 12)
    # unbounded: adjacent LCPs in sorted order abc, abc, abd, xbc are 3, 2, 0
    assert one.unbounded_chars == three.unbounded_chars == 5
    assert measure(["same"], 4).hit_chars == 0


def _brute(strings, window):
    hits = []
    for i, s in enumerate(strings):
        hits.append(max((common_prefix(s, strings[j]) for j in range(max(0, i - window), i)), default=0))
    return hits


@pytest.mark.parametrize("window", [1, 2, 5, 1000])
def test_hit_rate_matches_brute_force(window):
    rng = np.random.default_rng(window)
    strings = ["".join(rng.choice(list("ab"), size=rng.integers(0, 9))) for _ in range(80)]
    got = measure(strings, window)
    assert got.row_hits.tolist() == _brute(strings, window)
    assert got.unbounded_chars == sum(_brute(strings, len(strings)))


def test_row_order_matters_only_with_a_bounded_cache():
    s = ["k1 aaaa", "zz", "k1 aaab", "yy", "k1 aaac"]
    regrouped = [s[0], s[2], s[4], s[1], s[3]]
    assert measure(regrouped, 1).hit_chars > measure(s, 1).hit_chars
    assert measure(regrouped, 100).hit_chars == measure(s, 100).hit_chars


# ---------------------------------------------------------------- tables, serialisation, validation

def test_functional_dependencies_of_a_small_table():
    t = Table("t", ("id", "title", "genre", "review"),
              (("1", "A", "drama", "r1"), ("2", "B", "drama", "r2"), ("1", "A", "drama", "r3"), ("3", "C", "horror", "r4")))
    fds = t.functional_dependencies()
    assert ("id", "title") in fds and ("title", "id") in fds and ("id", "genre") in fds
    assert ("genre", "id") not in fds             # drama goes with two ids
    assert not any(a == "review" for a, _ in fds)  # a key determines everything and groups nothing
    assert t.cell_chars[0].tolist() == [len("id: 1\n"), len("title: A\n"), len("genre: drama\n"), len("review: r1\n")]


def test_serialise_and_per_row_column_orders():
    t = _table()
    r = validate(([2, 0, 1], [[0, 2, 1], [0, 2, 1], [2, 0, 1]]), t)
    s = serialise(t, r)
    assert s[0] == cell_text("a", "k") + cell_text("c", "long") + cell_text("b", "x3")
    assert s[2] == "c: long\na: j\nb: x2\n"
    shared = validate((np.array([0, 1, 2]), np.array([1, 0, 2])), t)  # one order for every row
    assert shared.col_order.shape == (3, 3) and (shared.col_order == [1, 0, 2]).all()


@pytest.mark.parametrize("result,message", [
    ("sorted", "must return a pair"),
    (([0, 1, 2],), "must return a pair"),
    (([0, 1, 2], [0, 1, 2], {"hit_rate": 1.0}), "must return a pair"),
    (([0, 1, 2.0], [0, 1, 2]), "row_order must hold integers"),
    (([True, False, True], [0, 1, 2]), "row_order must hold integers"),
    (([[0], [1, 2]], [0, 1, 2]), "rectangular|integers"),
    (([0, 1], [0, 1, 2]), r"row_order shape \(2,\)"),
    (([0, 1, 3], [0, 1, 2]), r"row_order\[2\] = 3 is not a table row"),
    (([0, 0, 2], [0, 1, 2]), r"sends table row 0 2 times \(positions \[0, 1\]\) and table row 1 never"),
    (([0, 1, 2], [0, 1]), r"col_order shape \(2,\)"),
    (([0, 1, 2], [[0, 1, 2]] * 2), r"col_order shape \(2, 3\)"),
    (([0, 1, 2], [0, 1, -1]), r"col_order\[0\]\[2\] = -1 .* is not a column"),
    (([2, 1, 0], [[0, 1, 2], [0, 1, 2], [0, 0, 2]]), "col_order\\[2\\] \\(sent row 2, table row 0\\) repeats "
                                                     "column 'a' and drops column 'b'"),
])
def test_validation_rejects(result, message):
    with pytest.raises(InvalidOutput, match=message):
        validate(result, _table())


# ---------------------------------------------------------------- workloads

def test_generator_is_reproducible_and_seeds_differ():
    d = DATASETS["movies"]
    a, b, c = generate(d, 200, 7, "x"), generate(d, 200, 7, "x"), generate(d, 200, 8, "x")
    assert a.rows == b.rows and a.rows != c.rows
    assert a.columns == d.columns and all(len(r) == len(d.columns) for r in a.rows)


@pytest.mark.parametrize("name,fd", [
    ("movies", ("rotten_tomatoes_link", "movie_info")), ("movies", ("critic_name", "publisher_name")),
    ("products", ("parent_asin", "description")), ("products", ("categories", "main_category")),
    ("beer", ("beer/beerId", "beer/style")), ("bird", ("PostId", "Body")), ("pdmx", ("license", "license_url")),
])
def test_generated_tables_have_the_schema_dependencies(name, fd):
    t = generate(DATASETS[name], 600, 1, name)
    assert fd in t.functional_dependencies()
    distinct = dict(zip(t.columns, t.distinct()))
    assert distinct[fd[0]] < t.n_rows  # the determinant repeats: rows can share it


def test_train_and_held_out_seeds_disjoint():
    spec = problem.load(PROBLEM)
    seeds = lambda ids: {w.split("seed")[1].split(":")[0] for w in ids if "seed" in w}  # noqa: E731
    assert not seeds(spec.workloads.train) & seeds(spec.workloads.held_out)
    assert {w.split(":")[0] for w in spec.workloads.train} == set(DATASETS)


def _write(tmp_path, name, text, mode="w"):
    p = tmp_path / name
    (p.write_bytes if mode == "wb" else p.write_text)(text)
    return p


def test_csv_file_is_a_workload(tmp_path):
    _write(tmp_path, "t.csv", 'id,title,review\n1,"A, the film",good\n1,"A, the film",bad\n2,B,"multi\nline"\n')
    ev = make_evaluator({"runtime_weight": 0.0, "cache_rows": 1}, tmp_path)
    table, fds = ev.workload("csv:t.csv")
    assert table.columns == ("id", "title", "review") and table.rows[2] == ("2", "B", "multi\nline")
    assert ("id", "title") in fds
    r = ev.evaluate(InProcessCandidate.from_file(PROBLEM / "baselines/original_order.py"), "csv:t.csv")
    # row 1 shares "id: 1\ntitle: A, the film\nreview: " with row 0; row 2 shares "id: " with row 1
    shared = len("id: 1\ntitle: A, the film\nreview: ") + len("id: ")
    total = sum(len(f"id: {a}\ntitle: {b}\nreview: {c}\n") for a, b, c in table.rows)
    assert r.metrics["hit_rate"] == pytest.approx(shared / total)
    assert r.metrics["score"] == pytest.approx(shared / total)  # runtime_weight 0: the hit rate itself


@pytest.mark.parametrize("text,message", [
    ("", "empty file"),
    ("a,,c\n1,2,3\n4,5,6\n", "line 1: column 2 has no name"),
    ("a,b,a\n1,2,3\n4,5,6\n", "line 1: column name 'a' appears twice"),
    ("a,b,c\n1,2,3\n4,5\n", "line 3: 2 fields, the header has 3"),
    ('a,b\n1,2\n"unterminated,3\n', "malformed CSV"),
    ("a,b\n1,2\n", "1 data rows, need at least 2"),
])
def test_csv_errors_name_file_and_line(tmp_path, text, message):
    _write(tmp_path, "bad.csv", text)
    ev = make_evaluator({}, tmp_path)
    with pytest.raises(ConfigError, match="bad.csv") as e:
        ev.check_workload("csv:bad.csv")
    assert message in str(e.value)


def test_csv_not_utf8_names_the_line(tmp_path):
    _write(tmp_path, "latin.csv", b"a,b\n1,2\n3,caf\xe9\n", mode="wb")
    with pytest.raises(ConfigError, match=r"latin.csv line 3: not UTF-8"):
        make_evaluator({}, tmp_path).check_workload("csv:latin.csv")


@pytest.mark.parametrize("wid,message", [
    ("films:seed0:rows10", "unknown dataset"), ("movies:seed0", "missing rows"), ("movies:rows10", "missing seed"),
    ("movies:seed0:rows10:x1", "bad part"), ("movies:seed0:seed1:rows10", "given twice"),
    ("movies:seed0:rows1", "rows must be in"), ("csv:", "no file path"), ("csv:nope.csv", "file not found"),
])
def test_bad_workload_ids(wid, message):
    with pytest.raises(ConfigError, match=message):
        make_evaluator({}, PROBLEM).check_workload(wid)


def test_params_are_checked():
    with pytest.raises(ConfigError, match=r"unknown llm_sql param 'cache' \(did you mean 'cache_rows'\?"):
        make_evaluator({"cache": 4}, PROBLEM)
    with pytest.raises(ConfigError, match="must be int"):
        make_evaluator({"cache_rows": 2.5}, PROBLEM)
    with pytest.raises(ConfigError, match="cache_rows >= 1"):
        make_evaluator({"cache_rows": 0}, PROBLEM)


# ---------------------------------------------------------------- programs on workloads

def _hit(name: str, wid: str, **params) -> dict[str, float]:
    ev = make_evaluator({"runtime_weight": 0.0, **params}, PROBLEM)
    path = PROBLEM / ("initial.py" if name == "initial" else f"baselines/{name}.py")
    return ev.evaluate(InProcessCandidate.from_file(path), wid).metrics


def test_every_program_valid_and_deterministic_on_quick():
    for name in ("initial", "original_order", "ggr"):
        a, b = _hit(name, QUICK), _hit(name, QUICK)
        assert 0.0 <= a["hit_rate"] <= a["hit_rate_unbounded_cache"] <= 1.0
        assert a["hit_rate"] == b["hit_rate"] and a["score"] == a["hit_rate"]


def test_ggr_beats_original_order_on_small_tables_of_every_dataset():
    gaps = []
    for d in DATASETS:
        wid = f"{d}:seed77:rows400"
        gaps.append(_hit("ggr", wid)["hit_rate"] - _hit("original_order", wid)["hit_rate"])
        assert gaps[-1] > 0.02, wid  # beer's raw column order already leads with the beer: the smallest gap
    assert np.mean(gaps) > 0.3


@pytest.mark.slow
def test_ggr_lifts_the_hit_rate_far_above_the_original_order_on_held_out():
    spec = problem.load(PROBLEM)
    ggr = {w: _hit("ggr", w)["hit_rate"] for w in spec.workloads.held_out}
    orig = {w: _hit("original_order", w)["hit_rate"] for w in spec.workloads.held_out}
    for w in spec.workloads.held_out:
        assert ggr[w] > orig[w] + 0.05, (w, ggr[w], orig[w])
    assert np.mean(list(ggr.values())) > 4 * np.mean(list(orig.values()))
    assert np.mean(list(ggr.values())) > np.mean(list(orig.values())) + 0.3


def test_runtime_term_rewards_speed_and_stays_bounded():
    ev = make_evaluator({"runtime_weight": 0.5, "runtime_budget_s": 1e-9}, PROBLEM)
    m = ev.evaluate(InProcessCandidate.from_file(PROBLEM / "baselines/ggr.py"), QUICK).metrics
    assert m["score"] == pytest.approx(0.5 * m["hit_rate"])  # past the budget the speed term is 0
    assert m["runtime_s"] > 0


def test_feedback_names_the_missed_repeated_column():
    ev = make_evaluator({}, PROBLEM)
    r = ev.evaluate(InProcessCandidate.from_file(PROBLEM / "baselines/original_order.py"), QUICK)
    assert "hit rate" in r.feedback and "'movie_info'" in r.feedback and len(r.feedback) <= 600


def test_problem_spec_loads():
    spec = problem.load(PROBLEM)
    assert spec.name == "llm_sql" and spec.family == "data layout" and spec.entry.names == ("reorder",)
    src = spec.initial_source()
    assert src.index("# EVOLVE-BLOCK-START") < src.index("def reorder") < src.index("# EVOLVE-BLOCK-END")


# ---------------------------------------------------------------- the attack set, through the real sandbox

SIG = "def reorder(columns, rows, fds):\n"
AS_GIVEN = "    return list(range(len(rows))), list(range(len(columns)))\n"
ATTACKS = {
    **attacks.shared(SIG, AS_GIVEN, "must return a pair"),
    # nothing on the machine can raise the score; a read that the sandbox allows still needs a valid order
    "returns_a_file": fails(SIG + "    open('/etc/passwd').read()\n"
                            "    return open('/proc/self/cmdline').read(), None\n", ("exception", "invalid_output")),
    "reports_its_score": fails(SIG + "    return list(range(len(rows))), list(range(len(columns))), "
                               "{'hit_rate': 1.0, 'score': 1.0}\n", "invalid_output", "must return a pair"),
    "drops_a_cell": fails(SIG + "    return list(range(len(rows))), [0] + list(range(len(columns) - 1))\n",
                          "invalid_output", "repeats column"),
    "duplicates_a_row": fails(SIG + "    return [0] * len(rows), list(range(len(columns)))\n",
                              "invalid_output", "sends table row 0"),
    # edits what it is given (every cell the same) and sends it back in the original order: the trusted
    # side serialises its own copy, so this scores exactly as the original order
    "edits_its_input": no_gain(SIG + "    for r in rows:\n        r[:] = ['x'] * len(r)\n"
                               "    columns[:] = ['c'] * len(columns)\n    print('hit_rate: 1.0')\n" + AS_GIVEN,
                               refused=()),
}


bench = attacks.bench_fixture(PROBLEM, QUICK, params={"runtime_weight": 0.0})


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_find_no_way_to_raise_the_score(bench, name):
    ATTACKS[name].check(bench.score(ATTACKS[name].source), _hit("original_order", QUICK), ("hit_rate",))


def test_sandboxed_and_in_process_scores_agree(bench):
    m = bench.metrics((PROBLEM / "baselines/ggr.py").read_text())
    assert m["hit_rate"] == _hit("ggr", QUICK)["hit_rate"]


def test_every_permutation_of_a_tiny_table_is_accepted_and_scored_within_bounds():
    t = _table()
    for rows in itertools.permutations(range(3)):
        r = validate((list(rows), [2, 0, 1]), t)
        h = measure(serialise(t, r), 2)
        assert 0 <= h.hit_chars <= h.unbounded_chars <= h.total_chars
