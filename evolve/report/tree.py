"""The lineage tree as a plotly figure that stays readable at thousands of programs.

x is the iteration a program was made in; y is a lane inside its island's band. A program continues its
parent's lane when it is the child the lineage goes on through (the one on the path to the best program,
else the one with the largest subtree), so long lines of descent are straight; every other child starts a
chain in the free lane nearest its parent's. Lanes are reused once free, which keeps the height to roughly
the number of lines of descent alive at once rather than the number of programs.
"""
from __future__ import annotations

from dataclasses import dataclass

from evolve.report.charts import BEST, FAILED, attempt_href, integer_ticks, island_color, program_href
from evolve.report.data import ProgramInfo, RunData

BAND_GAP = 1.5  # empty lanes between island bands


@dataclass
class TreeLayout:
    y: dict[int, float]                       # program id -> y
    bands: list[tuple[int, float, float]]      # (island, first y, last y)
    lanes: int


def layout(data: RunData) -> TreeLayout:
    nodes = {p.id: p for p in data.lineage() if p.status == "ok" and p.iteration is not None}
    kids: dict[int, list[int]] = {}
    for p in nodes.values():
        if p.parent_id in nodes:
            kids.setdefault(p.parent_id, []).append(p.id)
    best = data.best()
    on_path = set(data.path_to(best.id if best else None))
    size = _subtree_sizes(nodes, kids)
    cont = {pid: _continuation(nodes, pid, cs, on_path, size) for pid, cs in kids.items()}
    cont = {k: v for k, v in cont.items() if v is not None}
    continued = set(cont.values())
    heads = sorted((p for p in nodes.values() if p.id not in continued), key=lambda p: (p.iteration, p.id))
    span = max((p.iteration for p in nodes.values()), default=0)
    gap = max(1, span // 200)  # iterations between chains sharing a lane, so they do not read as one
    lane_of: dict[int, int] = {}
    lane_end: dict[int, list[int]] = {}
    for h in heads:
        chain = [h.id]
        while chain[-1] in cont:
            chain.append(cont[chain[-1]])
        ends = lane_end.setdefault(h.island, [])
        parent = nodes.get(h.parent_id)
        same = parent is not None and parent.island == h.island
        want = lane_of[parent.id] if same else 0
        # never the parent's own lane: a level edge would run through the parent's later descendants
        lane = _free_lane(ends, want, h.iteration - gap, avoid=want if same else None)
        tail = nodes[chain[-1]].iteration
        if lane == len(ends):
            ends.append(tail)
        else:
            ends[lane] = tail
        for pid in chain:
            lane_of[pid] = lane
    y, bands, offset = {}, [], 0.0
    for island in sorted(lane_end):
        n = len(lane_end[island])
        bands.append((island, offset, offset + n - 1))
        for pid, lane in lane_of.items():
            if nodes[pid].island == island:
                y[pid] = offset + lane
        offset += n - 1 + BAND_GAP
    return TreeLayout(y, bands, sum(len(v) for v in lane_end.values()))


def _subtree_sizes(nodes: dict[int, ProgramInfo], kids: dict[int, list[int]]) -> dict[int, int]:
    size: dict[int, int] = {}
    for pid in sorted(nodes, reverse=True):  # a child is always stored after its parent
        size[pid] = 1 + sum(size[c] for c in kids.get(pid, ()))
    return size


def _continuation(nodes, pid: int, children: list[int], on_path: set[int], size: dict[int, int]) -> int | None:
    same = [c for c in children if nodes[c].island == nodes[pid].island]
    if not same:
        return None
    return min(same, key=lambda c: (c not in on_path, -size[c], nodes[c].iteration))


def _free_lane(ends: list[int], want: int, before: int, avoid: int | None = None) -> int:
    """The lane nearest `want` (below it first) whose last program is before `before`; a new lane if none."""
    for d in range(len(ends) + 1):
        for k in (want + d, want - d) if d else (want,):
            if 0 <= k < len(ends) and k != avoid and ends[k] < before:
                return k
    return len(ends)


def tree_figure(data: RunData):
    import plotly.graph_objects as go
    lay = layout(data)
    nodes = [data.programs[pid] for pid in sorted(lay.y)]
    best = data.best()
    path = [pid for pid in data.path_to(best.id if best else None) if pid in lay.y]
    big = len(nodes) > 300
    height = int(min(1500, max(340, 110 + lay.lanes * (6 if big else 16))))
    fig = go.Figure(layout=dict(
        title=dict(text="Lineage: click a program to open it", x=0.01), template="plotly_white", height=height,
        hovermode="closest", margin=dict(l=80, r=20, t=50, b=50),
        legend=dict(orientation="h", x=1, xanchor="right", y=1.0, yanchor="bottom"),
        xaxis=dict(title=dict(text="iteration"), zeroline=False),
        yaxis=dict(autorange="reversed", showgrid=False, zeroline=False,
                   tickvals=[(a + b) / 2 for _, a, b in lay.bands],
                   ticktext=[f"island {i}" for i, _, _ in lay.bands])))
    fig.add_trace(_edges(go, data, lay, nodes, "lineage", dict(color="rgba(120,120,120,0.45)", width=1)))
    for island in sorted({p.island for p in nodes}):
        ps = [p for p in nodes if p.island == island]
        fig.add_trace(go.Scatter(
            x=[p.iteration for p in ps], y=[lay.y[p.id] for p in ps], mode="markers", name=f"island {island}",
            marker=dict(size=5 if big else 9, color=island_color(island), line=dict(width=0.5, color="white")),
            customdata=[program_href(p.id) for p in ps], hovertext=[_hover(p) for p in ps], hoverinfo="text"))
    if path:
        ps = [data.programs[pid] for pid in path]
        fig.add_trace(_edges(go, data, lay, ps[1:], "root → best", dict(color=BEST, width=3)))
        fig.add_trace(go.Scatter(
            x=[p.iteration for p in ps], y=[lay.y[p.id] for p in ps], mode="markers", name="on the path",
            showlegend=False, marker=dict(size=8 if big else 11, color=[island_color(p.island) for p in ps],
                                          line=dict(width=2, color=BEST)),
            customdata=[program_href(p.id) for p in ps], hovertext=[_hover(p) for p in ps], hoverinfo="text"))
        b = ps[-1]
        fig.add_trace(go.Scatter(
            x=[b.iteration], y=[lay.y[b.id]], mode="markers", name=f"best #{b.id}",
            marker=dict(symbol="star", size=18, color=BEST, line=dict(width=1, color="black")),
            customdata=[program_href(b.id)], hovertext=[_hover(b)], hoverinfo="text"))
    fig.add_trace(_failed(go, data, lay))
    integer_ticks(fig, max((p.iteration for p in nodes), default=0))
    return fig


def _edges(go, data: RunData, lay: TreeLayout, children: list[ProgramInfo], name: str, line: dict):
    xs: list = []
    ys: list = []
    for p in children:
        par = data.programs.get(p.parent_id) if p.parent_id is not None else None
        if par is None or par.id not in lay.y:
            continue
        xs += [par.iteration, p.iteration, None]
        ys += [lay.y[par.id], lay.y[p.id], None]
    return go.Scatter(x=xs, y=ys, mode="lines", name=name, line=line, hoverinfo="skip",
                      showlegend=name != "lineage")


def _failed(go, data: RunData, lay: TreeLayout):
    """Failed attempts beside their parent's lane; hidden until switched on in the legend."""
    fails = [a for a in data.attempts if a.status != "ok" and a.parent_id in lay.y]
    return go.Scatter(
        x=[a.iteration for a in fails], y=[lay.y[a.parent_id] + 0.35 for a in fails], mode="markers",
        name=f"failed attempts ({len(fails)})", visible="legendonly",
        marker=dict(symbol="x", size=7, color=FAILED),
        customdata=[program_href(a.program_id) if a.program_id is not None else attempt_href(a.iteration)
                    for a in fails],
        hovertext=[f"iteration {a.iteration} failed at {a.stage}: {a.reason}<br>{_first_line(a.message)}"
                   for a in fails], hoverinfo="text")


def _hover(p: ProgramInfo) -> str:
    score = "-" if p.score is None else f"{p.score:.6g}"
    return (f"#{p.id} ({p.kind}) iteration {p.iteration}, island {p.island}, generation {p.generation}"
            f"<br>score {score}<br>{_first_line(p.origin)[:120]}")


def _first_line(text: str) -> str:
    from html import escape
    return escape((text or "").strip().splitlines()[0][:160]) if (text or "").strip() else ""
