"""Initial telemetry_repair program: link symmetry only. Where the two ends of a link direction disagree,
believe the larger reading (a failed poll reads zero), with a tolerance knob left untuned."""
import numpy as np

# EVOLVE-BLOCK-START
TOLERANCE = 0.10   # relative disagreement tolerated before repairing


def repair(topology, counters):
    peer = np.asarray(topology["iface_peer"])
    tx = np.asarray(counters["tx"], dtype=float)
    rx = np.asarray(counters["rx"], dtype=float)
    mine, theirs = tx, rx[peer]          # two readings of the traffic leaving each interface
    gap = np.abs(mine - theirs) > TOLERANCE * np.maximum(np.maximum(mine, theirs), 1.0)
    value = np.where(gap, np.maximum(mine, theirs), mine)
    return {"tx": value, "rx": value[peer]}
# EVOLVE-BLOCK-END
