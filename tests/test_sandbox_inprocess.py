"""The in-process backend, for trusted code only: a fresh module per start, values copied across, failures as
candidate errors."""
from __future__ import annotations


import pytest

from sandbox.base import CandidateError, Limits
from sandbox.inprocess import InProcessSandbox

FAST = Limits(call_timeout_s=2.0, workload_timeout_s=10.0, cpu_s=10, memory_mb=512, max_processes=16,
              output_bytes=64 * 1024)


# ---------------------------------------------------------------- the in-process backend (trusted code only)

COUNTER = "n = 0\ndef bump(xs):\n    global n\n    n += 1\n    xs.append(n)\n    return n, xs\n" \
          "def boom():\n    return 1 / 0\n"


def test_in_process_starts_a_fresh_module_and_copies_across(capsys):
    box = InProcessSandbox()
    assert box.isolation()["isolation"].startswith("none")
    caller = [0]
    for _ in range(2):  # a module-level counter starts over in every start
        with box.start(COUNTER + "print('imported')\n", FAST, ("bump", "boom")) as cand:
            assert cand.call("bump", caller) == [1, [0, 1]]  # a tuple arrives as a list, as from a sandbox
            assert cand.call("bump", caller) == [2, [0, 2]]
            assert caller == [0]  # the candidate worked on a copy
            assert cand.calls == 2 and cand.decision_s > 0 and cand.round_trip_s() == 0.0
    assert capsys.readouterr().out == "imported\nimported\n"  # not captured: the author sees prints


def test_in_process_failures_are_candidate_errors():
    box = InProcessSandbox()
    with pytest.raises(CandidateError) as info:
        with box.start(COUNTER, FAST, ("bump", "on_arrival")):
            pass
    assert info.value.reason == "import_error"
    assert info.value.message == "the candidate defines no function 'on_arrival' (required: bump, on_arrival)"
    with pytest.raises(CandidateError) as info:
        with box.start("import no_such_module_xyz\n", FAST):
            pass
    assert info.value.reason == "import_error" and "no_such_module_xyz" in info.value.message
    with box.start(COUNTER, FAST) as cand:
        with pytest.raises(CandidateError) as info:
            cand.call("boom")
        assert info.value.reason == "exception" and "in boom(): ZeroDivisionError" in info.value.message
        assert "return 1 / 0" in info.value.detail
        with pytest.raises(CandidateError, match="no function 'nope'"):
            cand.call("nope")
        assert cand.call("bump", []) == [1, [1]]  # still usable
