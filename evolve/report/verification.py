"""The report's Verification section: what `adrs verify` measured of the run's best programs and baselines on
a real device, beside the simulator's ranking (evolve/run/agreement.py), from the latest batch; earlier
batches are listed by their one-line summaries."""
from __future__ import annotations

from dataclasses import dataclass

from evolve.report.charts import base_layout, to_json
from evolve.report.data import RunData
from evolve.run.agreement import Agreement, agreement
from evolve.store import MeasurementRow


@dataclass
class Row:
    name: str
    href: str | None
    kind: str
    status: str
    reason: str
    sim_score: float | None
    sim_rank: int | None
    score: float | None
    measured_rank: int | None
    median_us: float | None
    spread: float | None
    repeats: int | None
    drift: str          # "" or why it was flagged
    model_score: float | None   # the simulator's own cost model for the same work, where the verifier has one


def verification_context(data: RunData) -> dict | None:
    """What the section shows, or None when the run was never verified."""
    if not data.measurements:
        return None
    batches = sorted({m.batch for m in data.measurements})
    last = [m for m in data.measurements if m.batch == batches[-1]]
    a: Agreement = agreement(last)
    ranks = {r.name: r for r in a.ranked}
    rows = [_row(m, ranks.get(m.name)) for m in last]
    rows.sort(key=lambda r: (r.sim_rank is None, r.sim_rank or 0, r.name))
    earlier = [agreement([m for m in data.measurements if m.batch == b]).summary_line() for b in batches[:-1]]
    first = last[0]
    return {"agreement": a, "rows": rows, "earlier": earlier, "workloads": ", ".join(first.workloads),
            "shapes": next((m.detail.get("shapes") for m in last if m.detail.get("shapes")), ""),
            "figure": to_json(_figure(a)) if a.ranked else None}


def _row(m: MeasurementRow, r) -> Row:
    return Row(m.name, f"programs/{m.program_id}.html" if m.program_id is not None else None, m.kind, m.status,
               m.reason, m.sim_score, r.sim_rank if r else None, m.score, r.measured_rank if r else None,
               m.median_s * 1e6 if m.median_s is not None else None, m.spread, m.repeats,
               (m.drift or "flagged") if m.drift_flagged else "", m.detail.get("model_score"))


def _figure(a: Agreement):
    import plotly.graph_objects as go
    fig = go.Figure(go.Scatter(
        x=[r.sim_score for r in a.ranked], y=[r.score for r in a.ranked], mode="markers+text",
        text=[r.name for r in a.ranked], textposition="top center",
        marker=dict(size=10, color=["#d62728" if r.drift_flagged else "#1f77b4" for r in a.ranked]),
        hovertemplate="%{text}<br>simulator %{x:.4g}<br>measured %{y:.4g}<extra></extra>"))
    fig.update_layout(**base_layout(f"Simulator ({a.basis}) against measured ({a.verifier})",
                                    f"simulator score ({a.basis})", "measured score"))
    return fig
