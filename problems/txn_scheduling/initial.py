"""Initial transaction order: fewest writes first (writes are what conflicts), ties by index."""


# EVOLVE-BLOCK-START
def schedule(txns):
    writes = [sum(1 for kind, _ in ops if kind == "w") for ops in txns]
    return sorted(range(len(txns)), key=lambda t: (writes[t], t))
# EVOLVE-BLOCK-END
