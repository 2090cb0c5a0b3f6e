"""The comparison page of several runs: a table, best score against iterations and dollars, and the best
program of each run side by side."""
from __future__ import annotations

import os
from pathlib import Path

from evolve.report import charts, code, pages
from evolve.report.data import HELD_OUT, RunData
from evolve.report.site import copy_assets, render
from evolve.report.stats import gap_ci, mean_ci


def _report_link(run_dir: Path, out: Path, target: str = "index.html") -> str:
    """Relative address of a page of the run's own report, or '' when it has not been written."""
    page = run_dir / "report" / target
    if not page.is_file():
        return ""
    return Path(os.path.relpath(page.resolve(), out.resolve())).as_posix()


def _run_row(data: RunData, run_dir: Path, out: Path) -> dict:
    best = data.best()
    tr = list(data.split_values(best.id, "train").values()) if best else []
    ho = list(data.split_values(best.id, HELD_OUT).values()) if best else []
    proposals = [a for a in data.attempts if a.iteration > 0]
    return dict(
        id=data.run_id, problem=data.run["problem"], seed=data.run["seed"], models=pages.models(data),
        proposals=len(proposals), failed=sum(a.status != "ok" for a in proposals), best=best,
        train=mean_ci(tr), held_out=mean_ci(ho), gap=gap_ci(tr, ho),
        cost=data.cost_text() if data.llm_calls else "–", wall=pages.duration(pages.wall_time(data)),
        report=_report_link(run_dir, out), code=code.python_html(best.source) if best else "",
        program_link=lambda pid, d=run_dir: _report_link(d, out, charts.program_href(pid)))


def _curves(runs: list[tuple[RunData, Path]], rows: list[dict], dollars: bool):
    import plotly.graph_objects as go
    title = "dollars spent on LLM calls" if dollars else "iteration"
    fig = go.Figure(layout=charts.base_layout(f"Best train score against {title}", "US dollars" if dollars else
                                          "iteration", runs[0][0].score_metric, 420))
    for i, ((data, _), row) in enumerate(zip(runs, rows)):
        if dollars:
            pts = charts.cost_points(data)
        else:
            ok = sorted((p for p in data.lineage() if p.status == "ok" and p.score is not None),
                        key=lambda p: p.iteration)
            pts = [(p.iteration, p.score) for p in ok]
        if not pts:
            continue
        xs, ys = charts.best_so_far(pts)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=data.run_id,
                                 line=dict(shape="hv", width=2, color=charts.PALETTE[i % len(charts.PALETTE)])))
        if row["best"] is not None:  # the best program, a click away from its page in the run's report
            b = row["best"]
            bx = xs[ys.index(ys[-1])]   # where the running best first reached its final value
            fig.add_trace(go.Scatter(
                x=[bx], y=[b.score], mode="markers", showlegend=False,
                marker=dict(symbol="star", size=14, color=charts.PALETTE[i % len(charts.PALETTE)]),
                customdata=[row["program_link"](b.id)],
                hovertext=[f"{data.run_id}: best #{b.id}, {b.score:.6g}"], hoverinfo="text"))
    if dollars:
        fig.update_xaxes(tickprefix="$")
    return fig


def write_compare(runs: list[tuple[RunData, Path]], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    copy_assets(out)
    rows = [_run_row(d, rd, out) for d, rd in runs]
    figures = {"iterations": _curves(runs, rows, dollars=False)}
    if any(charts.cost_points(d) for d, _ in runs):
        figures["dollars"] = _curves(runs, rows, dollars=True)
    metrics = {d.score_metric for d, _ in runs}
    render("compare.html", out / "index.html", title=f"comparison of {len(runs)} runs", root="",
           run_id=" vs ".join(d.run_id for d, _ in runs), runs=rows,
           problems=sorted({d.run["problem"] for d, _ in runs}), score_metric="/".join(sorted(metrics)),
           figures={k: charts.to_json(f) for k, f in figures.items()}, fmt=pages.fmt, fmt_ci=pages.fmt_ci)
    return out / "index.html"
