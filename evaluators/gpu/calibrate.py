"""The one command a lent GPU runs: harness self-check, serving step profile, MoE placement microbenchmark.

    python -m evaluators.gpu.calibrate --out DIR [--device auto|cuda|cpu] [--quick]

Writes under DIR (at most 8 files, as the device tool brings back): profile.json (the serving simulator's
profile), profile_report.json (every step point, fit and held-out errors), moe_report.json (each EPLB
baseline's placement timed per simulated GPU, beside the EPLB cost model), harness.json (device, every
measurement record with its drift check and readings), summary.md (the figures in words), and the figures
(figures.py) where matplotlib is present. On the CPU the same runs at tiny shapes (transformer.TINY,
moe_bench.TINY_EXPERT and 1/64 of a setting's step tokens).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path


from evaluators.eplb import workloads as eplb_workloads
from evaluators.eplb.cost_model import Coefficients
from evaluators.eplb.settings import ExpertShape, Hardware as EplbHardware
from evaluators.gpu import moe_bench as mb
from evaluators.gpu import serving_profile as sp
from evaluators.gpu.backend import Backend, open_backend
from evaluators.gpu.bench import Bench
from evaluators.gpu.timing import RepeatPolicy
from evaluators.gpu.transformer import TINY, LayerStack
from evaluators.serving.gpu import HARDWARE, MODELS

ROOT = Path(__file__).resolve().parents[2]
BASELINES = ("contiguous", "greedy_lpt", "deepseek_hierarchical", "deepseek_global")
MOE_WORKLOADS = ("ep32:skew6:seed101", "ep64:skew5:seed103")   # two held-out-style EPLB loads
CPU_TOKEN_DIVISOR = 64
QUICK_POLICY = RepeatPolicy(warmup=1, min_repeats=3, max_repeats=5, target_spread=0.25)


def device_key(name: str, fallback: str) -> str:
    """The serving preset (gpu.HARDWARE key) named in the device's name, else `fallback`."""
    low = name.lower()
    return next((k for k in HARDWARE if k in low), fallback)


def harness_check(bench: Bench, backend: Backend) -> dict:
    """Reference GEMM throughput, copy bandwidth and how quickly timings settle, on this device."""
    from evaluators.gpu.drift import reference_gemm
    gemm, flops = reference_gemm(backend)
    n_bytes = (1 << 31) if backend.is_gpu else (32 << 20)
    src = backend.torch.empty(n_bytes // 2, dtype=backend.torch.bfloat16, device=backend.device)
    dst = backend.torch.empty_like(src)
    rec = bench.measure("harness", {"gemm": gemm, "copy": lambda: dst.copy_(src)})
    del src, dst
    return {"gemm_tflops": flops / rec.median("gemm") / 1e12, "copy_tb_s": 2 * n_bytes / rec.median("copy") / 1e12,
            "gemm": rec.timings["gemm"].as_dict(), "copy": rec.timings["copy"].as_dict(),
            "drift": rec.drift.as_dict() if rec.drift else None}


def run_profile(bench: Bench, backend: Backend, out: Path, args, command: str, key: str, log) -> dict:
    shape = MODELS["llama-3-8b"] if backend.is_gpu else TINY
    layers = args.layers or (8 if backend.is_gpu else 2)
    steps = sp.gpu_grid() if backend.is_gpu else sp.cpu_grid()
    if args.quick:
        steps = steps[::2]
    train_steps, held_steps = sp.split_heldout(steps)
    overhead = (HARDWARE[key].step_overhead_s if backend.is_gpu else 0.0) if args.host_overhead_ms is None \
        else args.host_overhead_ms / 1e3
    stack = LayerStack(backend, shape, layers)
    say = lambda p: log(f"  {p.step.label():>28}: {p.step_s * 1e3:9.3f} ms{'  (drift flagged)' if p.flagged else ''}")  # noqa: E731
    log(f"serving profile: {shape.name}, {layers} of {shape.layers} layers timed, {len(steps)} steps")
    rounds = args.rounds or (1 if backend.is_gpu else 3)
    points = sp.profile_steps(bench, stack, train_steps + held_steps, shape.layers, overhead, rounds, say)
    train, held = points[:len(train_steps)], points[len(train_steps):]
    del stack
    context = {"timed_shape": sp.shape_name(shape), "timed_layers": layers, "model_layers": shape.layers,
               "rounds": rounds, "cuda_graphs": backend.is_gpu and backend.use_graphs,
               "dtype": str(backend.dtype), "device": bench.device.as_dict()}
    res = sp.write_profile(out, key, "llama-3-8b", train, held, command, overhead, context)
    log(f"  fitted: {res.cost}; fit MAPE {res.fit_mape:.1%}; held-out MAPE {res.heldout_mape:.1%} "
        f"(device time alone {res.heldout_device_mape:.1%}); analytic held-out MAPE "
        f"{'n/a' if res.analytic_heldout_mape is None else f'{res.analytic_heldout_mape:.1%}'}")
    return asdict(res)


def load_baseline(name: str):
    path = ROOT / "problems" / "eplb" / "baselines" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"eplb_baseline_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.rebalance_experts


def run_moe(bench: Bench, backend: Backend, args, key: str, log) -> dict:
    shape = ExpertShape() if backend.is_gpu else mb.TINY_EXPERT
    hw = EplbHardware(hbm_bytes_per_s=HARDWARE[key].hbm_bytes_per_s)   # the lent device's HBM (H100 or H200)
    coef = Coefficients.of(shape, hw)
    layers = 2 if args.quick else args.moe_layers
    baselines = BASELINES[:2] if args.quick else BASELINES
    report = {"expert_shape": asdict(shape), "coefficients": asdict(coef), "workloads": []}
    for wid in MOE_WORKLOADS[:1] if args.quick else MOE_WORKLOADS:
        w = eplb_workloads.build(wid, eplb_workloads.Defaults(), ROOT / "problems" / "eplb")
        s = w.setting
        tokens = s.step_tokens if backend.is_gpu else s.step_tokens // CPU_TOKEN_DIVISOR
        dep = mb.Deployment(s.num_gpus, s.slots_per_gpu, tokens, shape.top_k)
        placed, scored = w.loads[0], w.loads[1]     # placed on window 0, run on window 1, as the problem scores
        placements = {b: load_baseline(b)(placed.copy(), s.num_replicas, s.num_groups, s.num_nodes, s.num_gpus)
                      for b in baselines}
        pool = mb.ExpertPool(backend, shape, s.slots_per_gpu, mb.max_gpu_tokens(scored, list(placements.values()), dep))
        results = []
        for name, (phy2log, logcnt) in placements.items():
            r = mb.measure_placement(bench, pool, name, phy2log, logcnt, scored, dep, coef, layers)
            log(f"  {wid} {name:>22}: score {r.score:.3f} (cost model, compute only: {r.model_score:.3f}); "
                f"layer {r.layer_time_s * 1e6:8.1f} us, modelled {r.model_layer_time_s * 1e6:8.1f} us "
                f"(error {r.model_layer_error:.1%}); {len(r.layers)} layers in {r.elapsed_s:.1f} s")
            results.append(r.as_dict())
        del pool
        report["workloads"].append({"id": wid, "step_tokens": tokens, "deployment": asdict(dep), "placements": results})
    return report


def summary_md(harness: dict | None, profile: dict | None, moe: dict | None, bench: Bench, command: str,
               elapsed: float, failures: dict[str, str], graph_failures: list[str]) -> str:
    d, summ = bench.device, bench.summary()
    lines = [f"# Calibration on {d.name}", "",
             f"- command: `{command}`", f"- device: {d.name} ({d.kind}), driver {d.driver}, torch {d.torch}, "
             f"CUDA {d.cuda}", f"- took {elapsed:.0f} s; {summ['measurements']} measurements, "
             f"{len(summ['drift_flagged'])} flagged for drift, {len(summ['not_converged'])} timings that hit "
             "the repeat cap"]
    lines += [f"- FAILED: {name} (traceback in harness.json)" for name in failures]
    if graph_failures:
        lines.append(f"- {len(graph_failures)} CUDA graph captures fell back to eager launches (launch "
                     f"overhead timed); first: {graph_failures[0]}")
    if harness:
        lines += ["", "## Harness", f"- reference GEMM: {harness['gemm_tflops']:.3g} TFLOP/s; device copy: "
                  f"{harness['copy_tb_s']:.3g} TB/s (read + write)"]
    if profile:
        analytic = profile["analytic_heldout_mape"]
        lines += ["", "## Serving step profile (profile.json)", f"- fitted StepCost: {profile['cost']}",
                  f"- fit MAPE (train rows): {profile['fit_mape']:.1%}; held-out MAPE: {profile['heldout_mape']:.1%} "
                  f"(device time alone: {profile['heldout_device_mape']:.1%})",
                  "- analytic roofline on the same held-out points: "
                  + ("n/a (tiny shapes)" if analytic is None else f"{analytic:.1%}")]
    if moe:
        lines += ["", "## MoE placements (moe_report.json)", "",
                  "| workload | placement | score (measured) | score (cost model, compute) | layer us | model us "
                  "| model error |", "|---|---|---|---|---|---|---|"]
        for w in moe["workloads"]:
            for p in w["placements"]:
                lines.append(f"| {w['id']} | {p['name']} | {p['score']:.3f} | {p['model_score']:.3f} | "
                             f"{p['layer_time_s'] * 1e6:.1f} | {p['model_layer_time_s'] * 1e6:.1f} | "
                             f"{p['model_layer_error']:.1%} |")
        lines += [""] + [f"- {w['id']}: rank correlation (Spearman) of measured and cost-model scores "
                         f"{_spearman(w['placements']):.2f}" for w in moe["workloads"]]
    if d.kind == "cpu":
        lines += ["", "On the CPU every shape is tiny: these runs test the harness; their figures say nothing "
                  "about a GPU (the cost model's coefficients are an H100's/H200's)."]
    return "\n".join(lines) + "\n"


def _spearman(placements: list[dict]) -> float:
    from scipy.stats import spearmanr
    if len(placements) < 2:
        return float("nan")
    return float(spearmanr([p["score"] for p in placements], [p["model_score"] for p in placements]).statistic)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m evaluators.gpu.calibrate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    ap.add_argument("--preset", default="h100", choices=sorted(HARDWARE),
                    help="serving preset for a device whose name names none (the CPU)")
    ap.add_argument("--layers", type=int, default=None, help="layers timed per step (GPU 8, CPU 2)")
    ap.add_argument("--moe-layers", type=int, default=6, help="MoE layers sampled per placement")
    ap.add_argument("--host-overhead-ms", type=float, default=None,
                    help="added to every step (default: the preset's 0.5 ms on a GPU, 0 on the CPU)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="passes over the step grid, each step's fastest kept (GPU 1, CPU 3)")
    ap.add_argument("--quick", action="store_true", help="half the grid, two placements, few repeats (tests)")
    ap.add_argument("--no-graphs", action="store_true",
                    help="launch GPU work eagerly instead of replaying CUDA graphs (launch overhead then timed)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch (CPU only)")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Runs the three parts in turn; a part that fails is logged with its traceback and the others still run
    (a lent machine's minutes are too few to lose everything to one error). Exit status 1 if any failed."""
    args = parse_args(argv)
    command = "python -m evaluators.gpu.calibrate " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    backend = open_backend(args.device)
    backend.use_graphs = not args.no_graphs
    if not backend.is_gpu and args.threads:
        backend.torch.set_num_threads(args.threads)
    bench = Bench.on(backend, QUICK_POLICY if args.quick else None)
    key = device_key(bench.device.name, args.preset)
    log(f"device: {bench.device.name} ({backend.kind}, driver {bench.device.driver}); serving preset '{key}'")
    failures: dict[str, str] = {}

    def part(name: str, fn):
        try:
            return fn()
        except Exception:   # keep going: the other parts' figures are worth the minutes
            failures[name] = traceback.format_exc()
            log(f"{name} FAILED:\n{failures[name]}")
            return None
    harness = part("harness", lambda: harness_check(bench, backend))
    if harness:
        log(f"harness: reference GEMM {harness['gemm_tflops'] * 1e3:.1f} GFLOP/s, "
            f"copy {harness['copy_tb_s'] * 1e3:.1f} GB/s")
    profile = part("serving profile", lambda: run_profile(bench, backend, out, args, command, key, log))
    log("MoE placement microbenchmark (expert compute per simulated GPU)")
    moe = part("moe", lambda: run_moe(bench, backend, args, key, log))
    elapsed = time.perf_counter() - t0
    if moe:
        (out / "moe_report.json").write_text(json.dumps(moe, indent=1) + "\n")
    (out / "harness.json").write_text(json.dumps(
        {"command": command, "device": bench.device.as_dict(), "summary": bench.summary(), "harness": harness,
         "failures": failures, "graph_failures": backend.graph_failures,
         "records": [r.as_dict() for r in bench.records]}, indent=1) + "\n")
    (out / "summary.md").write_text(summary_md(harness, profile, moe, bench, command, elapsed, failures,
                                               backend.graph_failures))
    from evaluators.gpu.figures import write_figures
    log(part("figures", lambda: write_figures(out)) or "figures: failed")
    log(f"done in {elapsed:.0f} s: {', '.join(sorted(p.name for p in out.iterdir()))}"
        + (f"; FAILED: {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
