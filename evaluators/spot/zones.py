"""Spot zones: how long spot capacity stays up and down, and what it costs.

Single-region figures are the Can't Be Late paper's AWS traces (REFERENCE.md): availability and the mean
length of the up and down periods per zone; prices are the paper's V100 figures (on-demand $3.06/h, spot
$0.9731/h), used for every zone as the paper does. The multi-region set is nine V100 zones: REFERENCE.md
gives only the ranges (availability 0.19-0.93, spot $0.94-1.55/h), so the per-zone values below are an
assumption spread over those ranges, with price deliberately not ordered by availability (the cheapest
zones are not the most available ones, as on real clouds), and down periods that grow as availability
falls (the pattern of the four measured zones).
"""
from __future__ import annotations

from dataclasses import dataclass

ON_DEMAND_PRICE = 3.06      # $/h, p3.2xlarge (V100), the paper's figure
SPOT_PRICE = 0.9731         # $/h, the paper's single-region spot figure


@dataclass(frozen=True)
class Zone:
    """One zone's spot process: mean up and down period lengths (hours) and its spot price ($/h)."""

    name: str
    mean_up_h: float
    mean_down_h: float
    spot_price: float = SPOT_PRICE

    @property
    def availability(self) -> float:
        return self.mean_up_h / (self.mean_up_h + self.mean_down_h)


SINGLE_ZONES: dict[str, Zone] = {z.name: z for z in (
    Zone("us-west-2a_k80", 6.6, 0.33),    # 0.95 available
    Zone("us-west-2b_k80", 1.7, 5.05),    # 0.25
    Zone("us-west-2a_v100", 2.3, 1.06),   # 0.69
    Zone("us-west-2b_v100", 1.96, 1.34),  # 0.60
)}

MULTI_REGIONS: tuple[Zone, ...] = (
    Zone("us-east-1a_v100", 7.0, 0.53, 1.42),   # 0.93
    Zone("us-east-1c_v100", 4.1, 0.90, 1.55),   # 0.82
    Zone("us-east-1d_v100", 3.0, 1.17, 1.18),   # 0.72
    Zone("us-east-1f_v100", 2.4, 1.41, 1.30),   # 0.63
    Zone("us-east-2a_v100", 2.0, 1.64, 0.98),   # 0.55
    Zone("us-east-2b_v100", 1.7, 2.00, 1.07),   # 0.46
    Zone("us-west-2a_v100", 1.5, 2.55, 1.24),   # 0.37
    Zone("us-west-2b_v100", 1.2, 3.10, 0.94),   # 0.28
    Zone("us-west-2c_v100", 1.0, 4.26, 1.01),   # 0.19
)
