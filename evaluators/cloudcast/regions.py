"""The published figures the multi-cloud graph is built from: where regions are, what egress costs, how fast
VMs send, and what a VM-hour costs.

Sources (each figure can be checked):
- Egress prices: the providers' public list prices (2023, first pricing tier), as USD/GB by the SENDING
  region's continent. Within a provider: AWS charges inter-region transfer by source region only; GCP
  (premium tier) and Azure charge less within a continent than across. To another provider the traffic
  leaves over the internet and pays internet egress. Everything lies in REFERENCE.md's $0.01-0.19/GB
  (the top, $0.19, is GCP's internet egress from Oceania).
- Per-VM limits: the ADRS/Skyplane broadcast simulator's defaults (ingress/egress Gbps per VM: AWS 10/5,
  GCP 16/7, Azure 16/16), which follow AWS's 5 Gbps cap on traffic leaving a region per instance and GCP's
  7 Gbps external egress cap per VM.
- VM price: $0.54 per VM-hour (an m5.8xlarge spot instance, the ADRS simulator's figure), 2 VMs per region.
- Throughput (a modelling choice, calibrated to REFERENCE.md's 0.33-67 Gbps): it falls with distance (TCP
  over a long round trip, as Skyplane's measured grid shows) and is lower between providers (public
  internet peering) than on a provider's own backbone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

PROVIDERS = ("aws", "gcp", "azure")
CONTINENTS = ("NA", "SA", "EU", "ME", "AF", "AS", "OC")


@dataclass(frozen=True)
class Metro:
    name: str
    continent: str
    lat: float
    lon: float


# Metros where the three providers run regions (a provider gets a seeded subset of them).
METROS: tuple[Metro, ...] = tuple(Metro(*m) for m in (
    ("virginia", "NA", 38.9, -77.4), ("ohio", "NA", 40.0, -83.0), ("oregon", "NA", 45.6, -121.2),
    ("california", "NA", 37.4, -122.0), ("iowa", "NA", 41.3, -95.9), ("texas", "NA", 32.8, -96.8),
    ("montreal", "NA", 45.5, -73.6), ("toronto", "NA", 43.7, -79.4), ("arizona", "NA", 33.4, -112.0),
    ("las-vegas", "NA", 36.2, -115.1), ("south-carolina", "NA", 33.2, -80.0), ("utah", "NA", 40.8, -111.9),
    ("sao-paulo", "SA", -23.5, -46.6), ("santiago", "SA", -33.4, -70.6),
    ("ireland", "EU", 53.3, -6.3), ("london", "EU", 51.5, -0.1), ("frankfurt", "EU", 50.1, 8.7),
    ("paris", "EU", 48.9, 2.4), ("stockholm", "EU", 59.3, 18.1), ("milan", "EU", 45.5, 9.2),
    ("netherlands", "EU", 52.4, 4.9), ("zurich", "EU", 47.4, 8.5), ("madrid", "EU", 40.4, -3.7),
    ("warsaw", "EU", 52.2, 21.0), ("finland", "EU", 60.6, 27.0), ("belgium", "EU", 50.5, 3.8),
    ("bahrain", "ME", 26.1, 50.6), ("uae", "ME", 25.2, 55.3), ("tel-aviv", "ME", 32.1, 34.8),
    ("qatar", "ME", 25.3, 51.5), ("cape-town", "AF", -33.9, 18.4), ("johannesburg", "AF", -26.2, 28.0),
    ("tokyo", "AS", 35.7, 139.7), ("osaka", "AS", 34.7, 135.5), ("seoul", "AS", 37.6, 127.0),
    ("singapore", "AS", 1.35, 103.8), ("hong-kong", "AS", 22.3, 114.2), ("mumbai", "AS", 19.1, 72.9),
    ("delhi", "AS", 28.6, 77.2), ("jakarta", "AS", -6.2, 106.8), ("taiwan", "AS", 24.0, 121.0),
    ("chennai", "AS", 13.1, 80.3), ("sydney", "OC", -33.9, 151.2), ("melbourne", "OC", -37.8, 145.0),
))


@dataclass(frozen=True)
class ProviderPrices:
    """USD/GB by the sending region's continent."""

    same_continent: dict[str, float]   # to the same provider's region on the same continent
    other_continent: dict[str, float]  # to the same provider's region on another continent
    internet: dict[str, float]         # to another provider (leaves over the internet)


def _by_continent(**kw: float) -> dict[str, float]:
    assert set(kw) == set(CONTINENTS)
    return dict(kw)


_AWS_REGION = _by_continent(NA=0.02, EU=0.02, AS=0.09, OC=0.098, SA=0.138, ME=0.1105, AF=0.147)
PRICES: dict[str, ProviderPrices] = {
    # AWS: inter-region price depends on the source region only.
    "aws": ProviderPrices(_AWS_REGION, _AWS_REGION,
                          _by_continent(NA=0.09, EU=0.09, AS=0.114, OC=0.114, SA=0.15, ME=0.117, AF=0.154)),
    "gcp": ProviderPrices(_by_continent(NA=0.01, EU=0.02, AS=0.05, OC=0.08, SA=0.08, ME=0.08, AF=0.08),
                          _by_continent(NA=0.08, EU=0.08, AS=0.08, OC=0.15, SA=0.08, ME=0.11, AF=0.11),
                          _by_continent(NA=0.12, EU=0.12, AS=0.12, OC=0.19, SA=0.12, ME=0.12, AF=0.12)),
    "azure": ProviderPrices(_by_continent(NA=0.02, EU=0.02, AS=0.08, OC=0.08, SA=0.16, ME=0.08, AF=0.08),
                            _by_continent(NA=0.05, EU=0.05, AS=0.08, OC=0.08, SA=0.16, ME=0.08, AF=0.08),
                            _by_continent(NA=0.087, EU=0.087, AS=0.12, OC=0.12, SA=0.181, ME=0.181, AF=0.181)),
}


@dataclass(frozen=True)
class VmLimits:
    ingress_gbps: float
    egress_gbps: float


VM_LIMITS: dict[str, VmLimits] = {"aws": VmLimits(10.0, 5.0), "gcp": VmLimits(16.0, 7.0),
                                  "azure": VmLimits(16.0, 16.0)}
VMS_PER_REGION = 2
USD_PER_VM_HOUR = 0.54


@dataclass(frozen=True)
class ThroughputModel:
    """Per VM pair: peak * exp(-km / decay_km), times lognormal noise, clipped to [floor, ceil] Gbps."""

    intra_peak: float = 40.0
    intra_decay_km: float = 4000.0
    inter_peak: float = 25.0
    inter_decay_km: float = 3000.0
    noise_sigma: float = 0.3
    floor: float = 0.33
    ceil: float = 67.0

    def mean(self, km: float, same_provider: bool) -> float:
        peak, decay = ((self.intra_peak, self.intra_decay_km) if same_provider
                       else (self.inter_peak, self.inter_decay_km))
        return peak * math.exp(-km / decay)


def price(src_provider: str, src_continent: str, dst_provider: str, dst_continent: str) -> float:
    table = PRICES[src_provider]
    if src_provider != dst_provider:
        return table.internet[src_continent]
    if src_continent == dst_continent:
        return table.same_continent[src_continent]
    return table.other_continent[src_continent]


def distance_km(a: Metro, b: Metro) -> float:
    """Great-circle distance (haversine, Earth radius 6371 km)."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))
