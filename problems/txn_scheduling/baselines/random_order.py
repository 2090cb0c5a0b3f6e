"""A uniformly random order (fixed seed, so the score is reproducible): what no scheduling at all gives."""
import random


def schedule(txns):
    order = list(range(len(txns)))
    random.Random(0).shuffle(order)
    return order
