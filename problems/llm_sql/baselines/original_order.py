"""The table as it came: rows in arrival order, every row's cells in the schema's column order."""
import numpy as np


# EVOLVE-BLOCK-START
def reorder(columns, rows, fds):
    return np.arange(len(rows)), np.arange(len(columns))
# EVOLVE-BLOCK-END
