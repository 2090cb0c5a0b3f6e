"""Initial llm_sql program: one column order for every row (fewest distinct values first, with a length
knob left untuned), rows sorted by it, so rows that agree on the leading columns are sent together."""
import numpy as np

# EVOLVE-BLOCK-START
LENGTH_EXP = 0.0  # > 0 moves long repeated columns forward


def reorder(columns, rows, fds):
    n, m = len(rows), len(columns)
    distinct = [len({r[c] for r in rows}) for c in range(m)]
    mean_len = [1.0 + sum(len(r[c]) for r in rows) / n for c in range(m)]
    order = sorted(range(m), key=lambda c: distinct[c] / mean_len[c] ** LENGTH_EXP)
    row_order = sorted(range(n), key=lambda r: [rows[r][c] for c in order])
    return np.asarray(row_order), np.asarray(order)
# EVOLVE-BLOCK-END
