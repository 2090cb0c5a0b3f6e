"""Plotly figures of a run (scores over iterations and dollars, failures, initial/best/baselines), as JSON.

Figures are built with plotly's graph objects and embedded as JSON; report.js draws them with the
plotly.min.js copied beside the report. Points that stand for a program carry its page's address in
customdata, so a click opens it.
"""
from __future__ import annotations

from evolve.report.data import RunData
from evolve.report.stats import CompareRow

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
BEST = "#d62728"
FAILED = "#7f7f7f"


def program_href(pid: int) -> str:
    return f"programs/{pid}.html"


def attempt_href(iteration: int) -> str:
    return f"attempts/{iteration}.html"


def island_color(island: int) -> str:
    return PALETTE[island % len(PALETTE)]


def to_json(fig) -> str:
    """Figure JSON that is safe inside a <script> element."""
    import plotly.io as pio
    return pio.to_json(fig, validate=False).replace("</", "<\\/")


def base_layout(title: str, xtitle: str, ytitle: str, height: int = 380) -> dict:
    return dict(title=dict(text=title, x=0.01), template="plotly_white", height=height, hovermode="closest",
                margin=dict(l=60, r=20, t=50, b=50), xaxis=dict(title=dict(text=xtitle)),
                yaxis=dict(title=dict(text=ytitle)), legend=dict(orientation="h", y=-0.2))


def integer_ticks(fig, last: int) -> None:
    """Iterations are whole numbers: no 0.5 ticks on short runs."""
    if last <= 20:
        fig.update_xaxes(tick0=0, dtick=1)


def best_so_far(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """Running maximum of (x, score) points given in x order."""
    xs, ys, best = [], [], None
    for x, y in points:
        if best is None or y > best:
            best = y
        xs.append(x)
        ys.append(best)
    return xs, ys


def progress_figure(data: RunData):
    import plotly.graph_objects as go
    ok = [p for p in data.lineage() if p.status == "ok" and p.score is not None]
    ok.sort(key=lambda p: p.iteration)
    fig = go.Figure(layout=base_layout("Scores over iterations (train)", "iteration", data.score_metric))
    fig.add_trace(go.Scatter(
        x=[p.iteration for p in ok], y=[p.score for p in ok], mode="markers", name="programs",
        marker=dict(size=6, color=[island_color(p.island) for p in ok], opacity=0.6),
        customdata=[program_href(p.id) for p in ok],
        hovertext=[f"#{p.id} iteration {p.iteration} island {p.island}<br>{p.score:.6g}" for p in ok],
        hoverinfo="text"))
    bx, by = best_so_far([(p.iteration, p.score) for p in ok])
    last = max((a.iteration for a in data.attempts), default=0)
    if bx and bx[-1] < last:
        bx, by = bx + [last], by + [by[-1]]
    fig.add_trace(go.Scatter(x=bx, y=by, mode="lines", name="best so far", line=dict(color=BEST, shape="hv"),
                             hoverinfo="skip"))
    integer_ticks(fig, last)
    lo, hi = (min(p.score for p in ok), max(p.score for p in ok)) if ok else (0.0, 0.0)
    for i, b in enumerate(data.baselines()):
        if b.score is not None:
            # a baseline far off the programs' range would flatten them: listed, drawn on demand
            far = max(lo - b.score, b.score - hi) > 2 * max(hi - lo, 1e-12)
            fig.add_trace(go.Scatter(x=[0, last], y=[b.score, b.score], mode="lines", name=f"baseline {b.name}",
                                     line=dict(dash="dash", width=1, color=PALETTE[(i + 3) % len(PALETTE)]),
                                     visible="legendonly" if far else True,
                                     hovertext=f"baseline {b.name}: {b.score:.6g}", hoverinfo="text"))
    failed = [a for a in data.attempts if a.status != "ok"]
    if failed and ok:
        floor = min(p.score for p in ok)
        fig.add_trace(go.Scatter(
            x=[a.iteration for a in failed], y=[floor] * len(failed), mode="markers", name="failed attempts",
            marker=dict(symbol="x-thin", size=7, line=dict(width=1, color=FAILED)), visible="legendonly",
            customdata=[_attempt_target(a) for a in failed],
            hovertext=[f"iteration {a.iteration}: {a.stage} {a.reason}" for a in failed], hoverinfo="text"))
    return fig


def _attempt_target(a) -> str:
    return program_href(a.program_id) if a.program_id is not None else attempt_href(a.iteration)


def cost_points(data: RunData) -> list[tuple[float, float]]:
    """(cumulative dollars, score) of each ok program, in iteration order; empty without a priced LLM call
    (a flat $0 axis would claim the calls were free)."""
    if not data.priced:
        return []
    by_attempt: dict[int, float] = {}
    for c in data.llm_calls:
        if c.attempt_id is not None:
            by_attempt[c.attempt_id] = by_attempt.get(c.attempt_id, 0.0) + (c.cost_usd or 0.0)
    out, spent = [], 0.0
    for a in data.attempts:
        spent += by_attempt.get(a.id, 0.0)
        p = data.programs.get(a.program_id) if a.program_id is not None else None
        if p is not None and p.status == "ok" and p.score is not None:
            out.append((spent, p.score))
    return out


def cost_figure(data: RunData):
    import plotly.graph_objects as go
    pts = cost_points(data)
    fig = go.Figure(layout=base_layout("Best score against dollars spent on LLM calls", "US dollars",
                                   data.score_metric, 340))
    bx, by = best_so_far(pts)
    fig.add_trace(go.Scatter(x=bx, y=by, mode="lines+markers", name="best so far", marker=dict(size=4),
                             line=dict(color=BEST, shape="hv"), hovertemplate="$%{x:.4f}: %{y:.6g}<extra></extra>"))
    fig.update_xaxes(tickprefix="$")
    return fig


def failures_figure(data: RunData):
    import plotly.graph_objects as go
    counts: dict[tuple[str, str], int] = {}
    for a in data.attempts:
        if a.status != "ok":
            key = (a.stage, a.reason or "unknown")
            counts[key] = counts.get(key, 0) + 1
    items = sorted(counts.items(), key=lambda kv: kv[1])
    fig = go.Figure(layout=base_layout("Failed attempts by reason", "attempts", "", max(220, 60 + 28 * len(items))))
    fig.add_trace(go.Bar(x=[n for _, n in items], y=[f"{r} ({s})" for (s, r), _ in items], orientation="h",
                         marker=dict(color=FAILED), hovertemplate="%{y}: %{x}<extra></extra>"))
    fig.update_layout(margin=dict(l=200), showlegend=False)
    return fig


def scores_figure(rows: list[CompareRow], metric: str):
    """Mean score over workloads with 95% intervals, train and held-out, per compared program."""
    import plotly.graph_objects as go
    fig = go.Figure(layout=base_layout(f"Mean {metric} over workloads, 95% interval over workload seeds", "",
                                   metric, 360))
    for split, color, get in (("train", PALETTE[0], lambda r: r.train), ("held-out", PALETTE[1],
                                                                         lambda r: r.held_out)):
        shown = [r for r in rows if get(r) is not None]
        fig.add_trace(go.Bar(
            name=split, x=[r.label for r in shown], y=[get(r).mean for r in shown], marker=dict(color=color),
            error_y=dict(type="data", array=[get(r).half or 0 for r in shown], visible=True),
            customdata=[program_href(r.program.id) for r in shown],
            hovertemplate="%{x}: %{y:.6g}<extra>" + split + "</extra>"))
    fig.update_layout(barmode="group")
    return fig
