"""Per-step state as columns and keyed deltas: the trusted encoder (evaluators/state.py) against the mirror
that rebuilds whole tables inside the sandbox (sandbox/state_mirror.py), directly and through candidates."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from evaluators.state import DeltaTable, columns
from sandbox import protocol
from sandbox.base import CandidateError, Limits
from sandbox.inprocess import InProcessSandbox
from sandbox.local import LocalSandbox
from sandbox.state_mirror import MARKER, Mirror, StateError

LIMITS = Limits(call_timeout_s=5, workload_timeout_s=60, memory_mb=1024)
OBSERVER = """
import numpy as np
def observe(q, tick):
    try:
        q["id"][:1] = -1
        wrote = True
    except ValueError:
        wrote = False
    return {"table": q, "tick": tick, "wrote": wrote, "type": type(q).__name__}
def pair(a, b):
    return [a, b]
def ping():
    return 1
"""


@pytest.fixture(scope="module")
def local():
    box = LocalSandbox()
    yield box
    box.close()


def _box(name: str, local: LocalSandbox):
    return local if name == "local" else InProcessSandbox()


def _table(rng: np.random.Generator, keys: np.ndarray) -> dict[str, np.ndarray]:
    n = len(keys)
    return {"id": keys, "load": rng.normal(size=n), "tokens": rng.integers(0, 9, n).astype(np.int32),
            "urgent": rng.random(n) < 0.2, "tag": np.array([f"t{int(k) % 5}" for k in range(n)], dtype="U3")}


def _step(rng: np.random.Generator, t: dict[str, np.ndarray], fresh_keys) -> dict[str, np.ndarray]:
    """One random change: rows leave, arrive, change value, move, or all of it at once."""
    t = {k: v.copy() for k, v in t.items()}
    n = len(t["id"])
    what = rng.integers(0, 6)
    if what in (0, 5) and n:
        stay = rng.random(n) > 0.15
        t = {k: v[stay] for k, v in t.items()}
    if what in (1, 5):
        new = _table(rng, fresh_keys(int(rng.integers(0, 9))))
        t = {k: np.concatenate((t[k], new[k])) for k in t}
    n = len(t["id"])
    if what in (2, 5) and n:
        idx = rng.integers(0, n, max(1, n // 25))
        t["load"][idx] = rng.normal(size=len(idx))
        t["tokens"][idx] += 1
        t["load"][idx[:1]] = np.nan  # NaN must survive as NaN, not read as "changed" forever
    if what in (3, 5) and n:
        t = {k: v[rng.permutation(n)] for k, v in t.items()}
    if what == 4 and n:
        t["tokens"] = t["tokens"] + 1  # every row changes in one column
    return t


def _sequence(seed: int, steps: int, keys: str):
    rng = np.random.default_rng(seed)
    counter = [0]

    def fresh(k: int) -> np.ndarray:
        base = np.arange(counter[0], counter[0] + k)
        counter[0] += k
        if keys == "sparse":
            return base * 1_000_003 - 7_000_000  # negative and far apart: searched, not looked up
        if keys == "text":
            return np.array([f"r{i:05d}" for i in base], dtype="U6")
        return base
    t = _table(rng, fresh(40))
    for _ in range(steps):
        yield t
        t = _step(rng, t, fresh)


def _same(got: dict, want: dict) -> bool:
    return (list(got) == list(want)
            and all(got[k].dtype == want[k].dtype and got[k].tobytes() == want[k].tobytes() for k in want))


# ---------------------------------------------------------------- the trusted side and the mirror alone

def test_columns_from_dicts_and_objects():
    @dataclass
    class Req:
        id: int
        arrival_s: float

    fields = {"id": np.int64, "arrival_s": np.float32}
    by_key = columns([{"id": 3, "arrival_s": 0.5, "other": "x"}, {"id": 9, "arrival_s": 1.5}], fields)
    by_attr = columns((Req(3, 0.5), Req(9, 1.5)), fields)
    for cols in (by_key, by_attr):
        assert cols["id"].dtype == np.int64 and cols["id"].tolist() == [3, 9]
        assert cols["arrival_s"].dtype == np.float32 and cols["arrival_s"].tolist() == [0.5, 1.5]
    assert columns([], fields)["id"].shape == (0,)


@pytest.mark.parametrize("keys", ["dense", "sparse", "text"])
def test_the_mirror_rebuilds_every_step_from_small_deltas(keys):
    encoder, mirror, sizes = DeltaTable("queue"), Mirror(), []
    for t in _sequence(1, 300, keys):
        raw = protocol.encode(encoder.encode(t))
        got = mirror.apply(protocol.decode(raw))
        assert _same(got, t)
        assert not any(a.flags.writeable for a in got.values())
        sizes.append(len(raw) / max(1, len(protocol.encode(t))))
    assert sizes[0] > 0.9 and np.median(sizes) < 0.5  # the first step whole, then mostly deltas


def test_a_delta_carries_only_what_changed():
    rng = np.random.default_rng(0)
    t = _table(rng, np.arange(100))
    enc = DeltaTable("q")
    assert set(enc.encode(t)) == {MARKER, "stream", "seq", "n", "columns"}
    header = {MARKER, "stream", "seq", "n"}
    assert set(enc.encode(t)) == header  # nothing changed: nothing but the header
    t2 = {k: np.concatenate((np.delete(v, [5, 50]), _table(rng, np.arange(100, 103))[k])) for k, v in t.items()}
    t2["load"][7] += 1.0
    msg = enc.encode(t2)
    width = sum(v.dtype.itemsize for v in t.values())
    assert set(msg) == header | {"drop", "append", "patch"}
    assert msg["drop"].tolist() == [5, 50] and len(msg["append"]) == 3 * width
    assert list(msg["patch"]) == ["load"] and msg["patch"]["load"][0].tolist() == [7]
    t3 = dict(t2, tokens=t2["tokens"] * 2 + 1)
    msg = enc.encode(t3)
    assert set(msg) == header | {"set"} and list(msg["set"]) == ["tokens"]
    t2["load"][:] = 0  # the caller changing its arrays after encode changes nothing already encoded
    assert enc.encode(t3) is not None and set(enc.encode(t3)) == header


def test_encode_refuses_tables_it_cannot_key():
    enc = DeltaTable("q", key="id")
    with pytest.raises(ValueError, match="no key column 'id'"):
        enc.encode({"x": np.arange(3)})
    with pytest.raises(ValueError, match="duplicate"):
        enc.encode({"id": np.array([3, 1, 3])})
    with pytest.raises(ValueError, match="shape"):
        enc.encode({"id": np.arange(3), "x": np.arange(4)})
    with pytest.raises(ValueError, match="cannot cross"):
        enc.encode({"id": np.arange(2), "x": np.array([object(), 1], dtype=object)})


def test_malformed_deltas_are_refused():
    enc, mirror = DeltaTable("q"), Mirror()
    t = {"id": np.arange(5), "x": np.zeros(5)}
    mirror.apply(protocol.decode(protocol.encode(enc.encode(t))))
    step = enc.encode({"id": np.arange(1, 7), "x": np.ones(6)})
    assert set(step) >= {"drop", "append"}
    bad = [({**step, "stream": "other"}, "no first step"),
           ({**step, "seq": step["seq"] + 1}, "got step"),
           ({**step, "append": step["append"][:-1]}, "appended bytes"),
           ({**step, "drop": np.array([9], dtype=np.uint32)}, "IndexError"),
           ({**step, "drop": np.array([-1])}, "unsigned"),
           ({**step, "set": {"x": np.ones(6, dtype=np.float32)}}, "dtype"),
           ({**step, "patch": {"x": [np.array([0], dtype=np.uint32)]}}, "positions, values"),
           ({**step, "n": "6"}, "integer"),
           ({**step, MARKER: 2}, "version")]
    for msg, why in bad:
        with pytest.raises(StateError, match=why):
            mirror.resolve([msg])
    got = mirror.apply(step)  # the mirror is untouched by what it refused
    assert got["id"].tolist() == [1, 2, 3, 4, 5, 6] and got["x"].tolist() == [1.0] * 6
    assert mirror.apply(step)["id"].tolist() == [1, 2, 3, 4, 5, 6]  # a resent step (timed_call) is a repeat


# ---------------------------------------------------------------- through candidates

@pytest.mark.parametrize("backend", ["local", "inprocess"])
def test_candidates_see_the_trusted_tables(backend, local):
    box = _box(backend, local)
    queue, other = DeltaTable("queue"), DeltaTable("other")
    with box.start(OBSERVER, LIMITS, ("observe", "pair")) as cand:
        for tick, (t, u) in enumerate(zip(_sequence(2, 60, "dense"), _sequence(3, 60, "sparse"))):
            seen = cand.call("observe", queue.encode(t), tick)
            assert seen["tick"] == tick and seen["type"] == "dict" and seen["wrote"] is False
            assert _same(seen["table"], t)
            if tick % 10 == 0:  # two streams in one call, and a delta resent by timed_call
                a, b = cand.timed_call("pair", queue.encode(t), other.encode(u), repeats=2)[0]
                assert _same(a, t) and _same(b, u)


@pytest.mark.parametrize("backend", ["local", "inprocess"])
def test_a_refused_delta_is_a_clean_error_and_the_candidate_goes_on(backend, local):
    box = _box(backend, local)
    table = DeltaTable("queue")
    t = {"id": np.arange(4), "x": np.arange(4.0)}
    with box.start(OBSERVER, LIMITS) as first:
        first.call("observe", table.encode(t), 0)
    with box.start(OBSERVER, LIMITS) as cand:  # a fresh candidate: the stream's first step went elsewhere
        with pytest.raises(CandidateError) as info:
            cand.call("observe", table.encode(t), 1)
        assert info.value.reason == "infrastructure"
        assert "refused a state delta" in info.value.message and "no first step" in info.value.message
        assert cand.call("ping") == 1  # the runner answered and serves on
        table.reset()
        assert _same(cand.call("observe", table.encode(t), 2)["table"], t)


def test_a_candidate_changes_only_its_own_view(local):
    """Whatever a candidate does to its copy (here: writing through the arrays' buffers), the trusted table
    and the encoder's memory of it are untouched, and the next steps still encode from the trusted side."""
    vandal = OBSERVER + (
        "def scribble(q):\n"
        "    for a in q.values():\n"
        "        while a is not None and not isinstance(a, bytearray):\n"
        "            a = a.obj if isinstance(a, memoryview) else a.base\n"
        "        if a is not None:\n"
        "            a[:] = bytes(len(a))\n"
        "    return [float(x) for x in q['x']]\n")
    table = DeltaTable("queue")
    t = {"id": np.arange(4), "x": np.arange(1.0, 5.0)}
    keep = {k: v.copy() for k, v in t.items()}
    with local.start(vandal, LIMITS) as cand:
        assert cand.call("scribble", table.encode(t)) == [0.0] * 4  # it zeroed its own copy
        t2 = {"id": np.arange(5), "x": np.arange(1.0, 6.0)}
        assert cand.call("scribble", table.encode(t2))[4] == 5.0  # the new row, from the trusted side
    assert _same(t, keep)
    fresh = Mirror()
    table.reset()
    assert _same(fresh.apply(protocol.decode(protocol.encode(table.encode(t2)))), t2)
