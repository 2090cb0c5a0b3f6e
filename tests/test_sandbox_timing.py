"""The local sandbox's decision timing: what a candidate's calls cost is counted, call overhead is measured by a
baseline that travels the whole call path, and an empty call measures about zero."""
from __future__ import annotations

import statistics
import textwrap
import time

import pytest

from sandbox.local import LocalSandbox
from tests.test_sandbox import FAST


@pytest.fixture(scope="module")
def sb():
    box = LocalSandbox()
    yield box
    box.close()


def src(text: str) -> str:
    return textwrap.dedent(text)


SPIN = "import time\ndef spin(s):\n    t = time.perf_counter()\n    while time.perf_counter() - t < s:\n        pass\n"
# The runner flushes the candidate's output after every call; this makes each flush cost 60 µs, a cost
# that a baseline travelling the whole call path holds and a bare ping would not.
SLOW_FLUSH = src("""
    import sys, time
    class Slow:
        def __init__(self, stream):
            self.stream = stream
        def write(self, text):
            return self.stream.write(text)
        def flush(self):
            t = time.perf_counter()
            while time.perf_counter() - t < 60e-6:
                pass
    sys.stdout, sys.stderr = Slow(sys.stdout), Slow(sys.stderr)
    def f():
        return None
""")


def test_decision_time_counts_every_call(sb):
    with sb.start(SPIN + SLOW_FLUSH, FAST) as cand:
        for _ in range(5):
            cand.call("spin", 0.004)
        _, times = cand.timed_call("spin", 0.004, repeats=3)
        # what the policy spent (less a few µs: a baseline may be a little above this call's overhead)
        assert cand.calls == 8 and cand.decision_s >= 0.031
        assert all(0.0039 <= t < 0.1 for t in times)
        before, t0 = cand.decision_s, time.perf_counter()
        for _ in range(200):
            cand.call("f")
        wall = time.perf_counter() - t0
        assert cand.calls == 208
        # Every empty call takes at least the 120 µs of flushing that the baseline holds, so subtracting
        # the baseline takes at least that off each call; subtracting a bare ping (or nothing) would not.
        assert cand.decision_s - before < wall - 200 * 60e-6


def test_timed_empty_call_measures_about_zero(sb):
    with sb.start("def f():\n    return None\n", FAST) as cand:
        _, times = cand.timed_call("f", repeats=400)
        rtt = cand.round_trip_s()
    assert 0 < rtt < 0.01 and statistics.median(times) < 0.5 * rtt


def test_the_baseline_travels_the_whole_call_path(sb):
    """A baseline that skipped the call path (a bare ping) would leave the 2 x 60 µs of flushing in every
    timed call."""
    with sb.start(SLOW_FLUSH, FAST) as cand:
        _, times = cand.timed_call("f", repeats=200)
        assert cand.round_trip_s() >= 120e-6
        pings = []
        for _ in range(50):
            t0 = time.perf_counter()
            cand.ping()
            pings.append(time.perf_counter() - t0)
    assert statistics.median(pings) < cand.round_trip_s() - 100e-6  # the ping does skip it
    assert statistics.median(times) < 40e-6
