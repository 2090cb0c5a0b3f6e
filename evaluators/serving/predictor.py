"""The output-length predictor a policy may use: the true length times lognormal noise.

    predicted = max(1, round(output_tokens * exp(sigma * z))),  z ~ N(0, 1), drawn once per request

The noise is multiplicative and median-unbiased, like a learned length predictor's error in log space.
With sigma = 0.7 (the default) on the Azure-conversation output lengths (lognormal sigma 0.86, REFERENCE.md)
the log-space correlation of prediction and truth is 0.86 / sqrt(0.86^2 + 0.7^2) = 0.78, a Kendall tau of
about 0.57: a ranker that orders most pairs right and many wrong. sigma = 0 is an oracle. The value is an
assumption of this simulator, stated per workload; the draws are seeded by the workload's seed, so every
policy sees the same predictions for the same workload.
"""
from __future__ import annotations

import numpy as np

DEFAULT_SIGMA = 0.7


def predict_output(output_tokens: np.ndarray, sigma: float = DEFAULT_SIGMA, seed: int = 0) -> np.ndarray:
    if sigma < 0:
        raise ValueError(f"predictor sigma must be >= 0, got {sigma}")
    rng = np.random.default_rng([seed, 0x5E7])  # its own stream: does not shift the workload's draws
    noise = np.exp(sigma * rng.standard_normal(len(output_tokens)))
    return np.maximum(1, np.rint(output_tokens * noise)).astype(np.int64)


def kendall_tau_lognormal(sigma_true: float, sigma_noise: float) -> float:
    """Kendall's tau of a prediction with this noise on lognormal truth: (2/pi) asin(rho) for Gaussians."""
    rho = sigma_true / np.hypot(sigma_true, sigma_noise)
    return float(2 / np.pi * np.arcsin(rho))
