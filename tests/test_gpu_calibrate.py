"""The calibration command (evaluators/gpu/calibrate.py, bench/gpu_calibrate.sh) end to end on the CPU at
tiny shapes: every report is written, the profile loads into the serving simulator, each record carries
its drift check and device readings."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from evaluators.gpu.calibrate import device_key

ROOT = Path(__file__).resolve().parent.parent


def test_the_serving_preset_is_read_from_the_device_name():
    assert device_key("NVIDIA H200", "h100") == "h200"
    assert device_key("NVIDIA H100 80GB HBM3", "h200") == "h100"
    assert device_key("AMD EPYC", "h100") == "h100"


def test_the_script_parses():
    out = subprocess.run(["bash", "-n", str(ROOT / "bench" / "gpu_calibrate.sh")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.slow
def test_a_quick_cpu_calibration_writes_every_report(tmp_path, capsys):
    pytest.importorskip("torch", reason="PyTorch is not installed (pip install -e '.[gpu]')")
    from evaluators.gpu.calibrate import main
    from evaluators.serving.profile import load_profile
    import torch
    threads = torch.get_num_threads()
    try:
        rc = main(["--out", str(tmp_path), "--device", "cpu", "--quick", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0, capsys.readouterr().out
    names = {p.name for p in tmp_path.iterdir()}
    assert {"profile.json", "profile_report.json", "moe_report.json", "harness.json", "summary.md"} <= names
    assert len(names) <= 8   # what the device tool brings back
    g = load_profile(tmp_path / "profile.json").gpu()
    assert g.step.token_s > 0 and g.kv_blocks > 0
    report = json.loads((tmp_path / "profile_report.json").read_text())
    assert report["timed_shape"] == "tiny" and report["held_out"] and report["device"]["kind"] == "cpu"
    moe = json.loads((tmp_path / "moe_report.json").read_text())
    scores = {p["name"]: p["score"] for w in moe["workloads"] for p in w["placements"]}
    assert set(scores) == {"contiguous", "greedy_lpt"} and all(0 < s <= 1 for s in scores.values())
    harness = json.loads((tmp_path / "harness.json").read_text())
    assert not harness["failures"] and harness["records"]
    for rec in harness["records"]:
        assert rec["drift"]["before_s"] > 0 and rec["before"]["time_s"] > 0
    summary = (tmp_path / "summary.md").read_text()
    assert "held-out MAPE" in summary and "| ep32:skew6:seed101 | contiguous |" in summary
