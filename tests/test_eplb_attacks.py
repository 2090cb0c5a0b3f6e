"""The EPLB attack set through the real local sandbox: no candidate raises its score by reading files,
spinning, flooding its output, returning garbage, lying about its results, editing its input or gaming
the timer."""
from __future__ import annotations

import textwrap

import pytest

from tests import attacks
from tests.attacks import fails, no_gain
from tests.conftest import ROOT

PROBLEM = ROOT / "problems" / "eplb"
QUICK = "ep32:skew4:seed50:win3:layers8"
CONTIGUOUS = textwrap.dedent("""
    import numpy as np

    def contiguous(weight, num_replicas):
        L, E = np.shape(weight)
        row = np.arange(num_replicas) % E
        return np.tile(row, (L, 1)), np.tile(np.bincount(row, minlength=E), (L, 1))
    """)
SIG = CONTIGUOUS + "def rebalance_experts(w, r, g, n, gpus):\n"
HONEST = "    return contiguous(w, r)\n"
# the placement's metrics (the score also holds the measured runtime, which is noise)
PLACEMENT = ("balancedness", "layer_time_us", "time_efficiency")
ATTACKS = {
    **attacks.shared(SIG, HONEST, "must return a tuple", "window 0"),
    # reading files: refused by the sandbox, or at least never a valid placement
    "returns_a_file": fails(SIG + "    return len(open('/etc/passwd').read())\n", ("exception", "invalid_output")),
    "reports_a_score": fails(SIG + "    return (*contiguous(w, r), {'score': 1.0, 'layer_time_us': 1.0})\n",
                             "invalid_output", "got 3 items", "window 0"),
    "claims_replicas": fails(SIG + "    p, c = contiguous(w, r)\n    c[:, 0] += 1\n    c[:, 1] -= 1\n    return p, c\n",
                             "invalid_output", "logcnt[0, 0]", "window 0"),
    # zeroes the loads it is given: the trusted side scores on its own copy of the next window
    "edits_its_input": no_gain(SIG + "    w[...] = 0\n    w.flags.writeable = False\n" + HONEST, refused=()),
}


bench = attacks.bench_fixture(PROBLEM, QUICK, workload_timeout_s=10)


@pytest.fixture(scope="module")
def honest(bench):
    return bench.metrics(SIG + HONEST)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attacks_are_recorded_with_a_reason_or_gain_nothing(bench, honest, name):
    ATTACKS[name].check(bench.score(ATTACKS[name].source), honest, PLACEMENT)


def test_remembering_answers_does_not_shrink_the_measured_runtime(bench):
    """Slow on a new input, instant on a repeated one: every window's input is new, so the time stands."""
    memo = CONTIGUOUS + textwrap.dedent("""
        import time
        SEEN = {}

        def rebalance_experts(w, r, g, n, gpus):
            key = w.tobytes()
            if key not in SEEN:
                time.sleep(0.05)
                SEEN[key] = contiguous(w, r)
            return SEEN[key]
        """)
    out = bench.score(memo)
    assert out.ok, out.message
    assert out.mean("quick", "runtime_ms") >= 40
