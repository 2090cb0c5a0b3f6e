"""Seeded pseudo-language for generated cells: Zipf-distributed words, titles, sentences, person names.

Made-up words keep the generated tables free of any dataset's content while keeping what the hit rate
depends on: value lengths, repetition, and common leading words (partial prefix matches)."""
from __future__ import annotations

import numpy as np

SYLLABLES = ("ka", "lo", "mi", "ra", "te", "no", "su", "ve", "da", "ri", "po", "ne", "ba", "li", "to", "me",
             "sa", "ko", "ru", "fe", "gi", "ha", "ju", "wo", "ze", "an", "el", "or", "is", "um", "ta", "de")
VOCAB = 4000
ZIPF = 1.05


class Words:
    """A vocabulary and its Zipf word frequencies, drawn from one generator."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        n_syl = rng.integers(1, 4, size=VOCAB)
        syl = rng.integers(0, len(SYLLABLES), size=(VOCAB, 3))
        words = {"".join(SYLLABLES[s] for s in syl[i, :n_syl[i]]) for i in range(VOCAB)}
        self.vocab = sorted(words)
        rng.shuffle(self.vocab)
        p = 1.0 / np.arange(1, len(self.vocab) + 1) ** ZIPF
        self.cdf = np.cumsum(p / p.sum())

    def draw(self, k: int) -> list[str]:
        idx = np.searchsorted(self.cdf, self.rng.random(k) * self.cdf[-1], side="right")
        vocab = self.vocab
        return [vocab[i] for i in np.minimum(idx, len(vocab) - 1).tolist()]

    def title(self, lo: int, hi: int) -> str:
        return " ".join(w.capitalize() for w in self.draw(int(self.rng.integers(lo, hi + 1))))

    def sentence(self, lo: int, hi: int) -> str:
        words = self.draw(int(self.rng.integers(lo, hi + 1)))
        return " ".join([words[0].capitalize(), *words[1:]]) + "."

    def text(self, lo: int, hi: int) -> str:
        """A paragraph of lo..hi words in sentences of 5-18 words."""
        left, out = int(self.rng.integers(lo, hi + 1)), []
        while left > 0:
            k = min(left, int(self.rng.integers(5, 19)))
            out.append(self.sentence(k, k))
            left -= k
        return " ".join(out)

    def person(self) -> str:
        return f"{self.title(1, 1)} {self.title(1, 1)}"

    def slug(self, lo: int, hi: int) -> str:
        return "_".join(self.draw(int(self.rng.integers(lo, hi + 1))))
