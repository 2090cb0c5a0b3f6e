"""Trust every counter as reported: no repair, nothing flagged."""
import numpy as np


# EVOLVE-BLOCK-START
def repair(topology, counters):
    return {"tx": np.asarray(counters["tx"]), "rx": np.asarray(counters["rx"])}
# EVOLVE-BLOCK-END
