"""Shortest-makespan-first (SMF) greedy: repeatedly append the transaction that grows the makespan least.

It keeps its own copy of the documented scheduler model (README) to price each choice; the evaluator
recomputes the makespan of the returned order itself. Ties go to the transaction that would end first.
"""


def schedule(txns):
    ops = [[(kind == "w", key) for kind, key in t] for t in txns]
    access_end, write_end = {}, {}
    remaining = set(range(len(ops)))
    order, makespan = [], 0
    while remaining:
        best = None
        for t in sorted(remaining):
            s = 0
            for j, (w, k) in enumerate(ops[t]):
                s = max(s, (access_end if w else write_end).get(k, 0) - j)
            e = s + len(ops[t])
            rank = (max(makespan, e), e)
            if best is None or rank < best[0]:
                best = (rank, t, e)
        (_, _), t, e = best
        for w, k in ops[t]:
            access_end[k] = max(access_end.get(k, 0), e)
            if w:
                write_end[k] = max(write_end.get(k, 0), e)
        makespan = max(makespan, e)
        remaining.remove(t)
        order.append(t)
    return order
