"""Greedy Group Recursion (GGR), after Liu et al., "Optimizing LLM Queries in Relational Data Analytics
Workloads" (MLSys'25): pick the value whose rows would share the most prefix characters (its own cell plus
the cells of the columns it functionally determines, times the number of rows that can reuse them), put
those rows together with those cells first, recurse into that group on the remaining columns and into the
other rows on all columns. Deep or small sub-tables fall back to one column order (most repeated first)
and a lexicographic sort of the rows. Hits are counted in characters, as the evaluator counts them (the
paper counts squared lengths)."""
import numpy as np

# EVOLVE-BLOCK-START
MAX_DEPTH = 8      # recursion into groups deeper than this falls back to the column-statistics order
MIN_ROWS = 2       # tables this small need no search


def _encode(rows, m):
    codes = np.empty((len(rows), m), dtype=np.int64)
    lens = np.empty((len(rows), m), dtype=np.int64)
    for c in range(m):
        col = [r[c] for r in rows]
        index = {}
        codes[:, c] = [index.setdefault(v, len(index)) for v in col]
        lens[:, c] = [len(v) for v in col]
    return codes, lens


def _fallback(idx, cols, codes, lens):
    """One column order for every row (largest repeated characters first), rows sorted by it."""
    gains = []
    for c in cols:
        _, first, counts = np.unique(codes[idx, c], return_index=True, return_counts=True)
        gains.append(float((lens[idx[first], c] * (counts - 1)).sum()))
    order = [cols[i] for i in np.argsort(-np.asarray(gains), kind="stable")]
    rows = idx[np.lexsort([codes[idx, c] for c in reversed(order)])] if order else idx
    return rows, np.tile(np.asarray(order, dtype=np.int64), (len(rows), 1))


def _best_value(idx, cols, codes, lens, deps):
    """(gain, column, value code) of the value whose group would share the most characters."""
    best = (0.0, -1, -1)
    colset = set(cols)
    for c in cols:
        inferred = [d for d in deps.get(c, ()) if d in colset]
        rowgain = lens[idx, c] + (lens[np.ix_(idx, inferred)].sum(axis=1) if inferred else 0)
        vals, first, counts = np.unique(codes[idx, c], return_index=True, return_counts=True)
        gain = rowgain[first] * (counts - 1)
        k = int(np.argmax(gain))
        if gain[k] > best[0]:
            best = (float(gain[k]), c, int(vals[k]))
    return best


def _ggr(idx, cols, codes, lens, deps, depth):
    """Rows of `idx` in order, and for each its columns of `cols` in order ([len(idx), len(cols)])."""
    if len(idx) < MIN_ROWS or len(cols) <= 1 or depth > MAX_DEPTH:
        return _fallback(idx, cols, codes, lens)
    out_rows, out_cols = [], []
    rest = idx
    while len(rest):
        gain, c, v = _best_value(rest, cols, codes, lens, deps)
        if c < 0:  # nothing repeats any more
            r, k = _fallback(rest, cols, codes, lens)
            out_rows.append(r)
            out_cols.append(k)
            break
        mask = codes[rest, c] == v
        group, rest = rest[mask], rest[~mask]
        prefix = [c] + [d for d in deps.get(c, ()) if d in cols and d != c]
        remaining = [d for d in cols if d not in prefix]
        if remaining:
            r, k = _ggr(group, remaining, codes, lens, deps, depth + 1)
        else:
            r, k = group, np.empty((len(group), 0), dtype=np.int64)
        out_rows.append(r)
        out_cols.append(np.hstack([np.tile(np.asarray(prefix, dtype=np.int64), (len(r), 1)), k]))
    return np.concatenate(out_rows), np.vstack(out_cols)


def reorder(columns, rows, fds):
    m = len(columns)
    codes, lens = _encode(rows, m)
    lens += np.asarray([len(c) + 3 for c in columns], dtype=np.int64)[None, :]  # "name: value\n"
    pos = {c: i for i, c in enumerate(columns)}
    deps = {}
    for a, b in fds:
        deps.setdefault(pos[a], []).append(pos[b])
    row_order, col_order = _ggr(np.arange(len(rows)), list(range(m)), codes, lens, deps, 0)
    return row_order, col_order
# EVOLVE-BLOCK-END
