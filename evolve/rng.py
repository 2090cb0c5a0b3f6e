"""The one source of randomness: a generator per (run seed, iteration, purpose).

Every random choice in adrs takes a generator from here, so a run is a pure function of its seed and of
the order of its iterations; the same choice at the same iteration replays identically after a resume,
whatever other choices were or were not made before it.
"""
from __future__ import annotations

import hashlib

import numpy as np

_WORD = 2**32
_LIMIT = 2**64


def _words64(value: int, name: str) -> list[int]:
    # A fixed width per field (two 32-bit words) keeps the entropy layout unambiguous: (seed, iteration)
    # pairs can never run into each other the way variable-width big-int coercion could.
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"rng: {name} must be an int, got {type(value).__name__}")
    value = int(value)
    if not 0 <= value < _LIMIT:
        raise ValueError(f"rng: {name} must be in [0, 2**64), got {value}")
    return [value % _WORD, value // _WORD]


def _purpose_words(purpose: str) -> list[int]:
    # Python's hash() is salted per process (PYTHONHASHSEED), so it would break replay; a 128-bit
    # blake2b digest of the UTF-8 bytes is stable everywhere and makes accidental collisions negligible.
    digest = hashlib.blake2b(purpose.encode("utf-8"), digest_size=16).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


def rng(seed: int, iteration: int, purpose: str) -> np.random.Generator:
    """A fresh generator for one purpose at one iteration of the run seeded with `seed`."""
    if not isinstance(purpose, str) or not purpose:
        raise ValueError("rng: purpose must be a non-empty string naming the random choice")
    entropy = _words64(seed, "seed") + _words64(iteration, "iteration") + _purpose_words(purpose)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))
