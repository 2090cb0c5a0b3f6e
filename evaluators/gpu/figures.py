"""The calibration's figures, drawn from its reports with matplotlib when it is installed (the GPU image has it;
adrs does not depend on it): step_time.png, measured against predicted step time (fitted profile and
analytic roofline; train and held-out points), and moe_layers.png, each placement's measured layer time
against the EPLB cost model's compute term."""
from __future__ import annotations

import json
from pathlib import Path


def write_figures(out: Path) -> str:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "figures: matplotlib is not installed; the reports hold every number"
    written = [_step_time(out, plt), _moe_layers(out, plt)]
    return "figures: " + ", ".join(w for w in written if w)


def _predict(coef: dict, point: dict) -> float:
    return (coef["fixed_s"] + coef["token_s"] * point["tokens"] + coef["sampled_s"] * point["sampled"]
            + coef["pair_s"] * point["pairs"] + coef["kv_read_s"] * point["kv_read"])


def _step_time(out: Path, plt) -> str | None:
    path = out / "profile_report.json"
    if not path.exists():
        return None
    rep = json.loads(path.read_text())
    fig, ax = plt.subplots(figsize=(6, 5))
    marks = {"prefill": "o", "decode": "s", "mixed": "^"}
    for split, color in (("train", "tab:blue"), ("held_out", "tab:red")):
        for kind, mark in marks.items():
            pts = [p for p in rep[split] if p["kind"] == kind]
            if pts:
                ax.scatter([p["step_s"] * 1e3 for p in pts], [_predict(rep["fitted"], p) * 1e3 for p in pts],
                           c=color, marker=mark, s=18, label=f"profile, {split} {kind}")
    if rep.get("analytic_heldout_mape") is not None:
        pts = rep["held_out"]
        ax.scatter([p["step_s"] * 1e3 for p in pts], [_predict(rep["analytic"], p) * 1e3 for p in pts],
                   facecolors="none", edgecolors="gray", s=30, label="analytic roofline, held-out")
    lo, hi = ax.get_xlim()
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="measured step time (ms)", ylabel="predicted step time (ms)",
           title=f"held-out MAPE {rep['heldout_mape']:.1%} (fit {rep['fit_mape']:.1%})")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "step_time.png", dpi=120)
    plt.close(fig)
    return "step_time.png"


def _moe_layers(out: Path, plt) -> str | None:
    path = out / "moe_report.json"
    if not path.exists():
        return None
    rep = json.loads(path.read_text())
    fig, ax = plt.subplots(figsize=(6, 5))
    for w in rep["workloads"]:
        for p in w["placements"]:
            ax.scatter([x["layer_s"] * 1e6 for x in p["layers"]], [x["model_layer_s"] * 1e6 for x in p["layers"]],
                       s=18, label=f"{w['id'].split(':')[0]} {p['name']} (score {p['score']:.2f})")
    lo, hi = ax.get_xlim()
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="measured layer time, expert compute (us)",
           ylabel="EPLB cost model compute term (us)", title="MoE layer time: microbenchmark vs cost model")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "moe_layers.png", dpi=120)
    plt.close(fig)
    return "moe_layers.png"
