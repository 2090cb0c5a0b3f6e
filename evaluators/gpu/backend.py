"""The device measurements run on: PyTorch (imported lazily), a CUDA GPU when there is one, else the CPU.

A backend gives what the harness needs of a device: a synchronised timer (CUDA events on a GPU,
perf_counter on the CPU), a cache flush (writing a buffer twice the size of the last-level cache: the GPU's
L2, the CPU's L3) and the dtype the shapes are timed in (bf16 on a GPU as served; float32 on the CPU, whose
bf16 GEMMs are emulated on many machines and would time the emulation). Nothing here changes a device
setting: no clocks, no persistence mode, no resets.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MISSING = "PyTorch is not installed: pip install -e '.[gpu]' (the CPU build: pip install torch==2.13.0)"
CPU_FLUSH_CAP = 64 << 20     # a flush buffer larger than this costs more than it protects on the CPU
GPU_FLUSH_DEFAULT = 128 << 20  # when the L2 size cannot be read (H100/H200 L2: 50-60 MB)


class TorchMissing(RuntimeError):
    pass


def import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise TorchMissing(MISSING) from None
    return torch


def torch_available() -> bool:
    try:
        import_torch()
    except TorchMissing:
        return False
    return True


def cuda_available() -> bool:
    return torch_available() and import_torch().cuda.is_available()


@dataclass
class Backend:
    kind: str            # "cuda" or "cpu"
    torch: Any
    device: Any          # torch.device
    dtype: Any           # torch dtype the shapes are timed in
    flush_bytes: int
    use_graphs: bool = True                 # capture GPU work in CUDA graphs (graphed())
    graph_failures: list = field(default_factory=list)   # why a capture fell back to eager launches

    @property
    def is_gpu(self) -> bool:
        return self.kind == "cuda"

    def synchronize(self) -> None:
        if self.is_gpu:
            self.torch.cuda.synchronize(self.device)

    def timer(self) -> Callable[[Callable[[], object]], float]:
        return _cuda_event_timer(self) if self.is_gpu else _perf_counter_timer(self)

    def flusher(self) -> Callable[[], None]:
        buf = self.torch.empty(max(self.flush_bytes // 4, 1), dtype=self.torch.float32, device=self.device)

        def flush() -> None:
            buf.zero_()   # a write of the whole buffer: evicts what the timed operation could reuse
        return flush

    def graphed(self, fn: Callable[[], object], what: str = "") -> Callable[[], object]:
        """On a GPU, fn captured once in a CUDA graph and replayed: the timing is then the GPU's work, not
        Python's kernel launches (serving engines replay graphs for the same reason; their host work is a
        separate per-step constant). The CPU, or a capture that fails, gets fn itself (failures are kept)."""
        if not self.is_gpu or not self.use_graphs:
            return fn
        torch = self.torch
        try:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):   # warm-up off the capture: lazy inits, kernel choice
                fn()
                fn()
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                fn()
            torch.cuda.synchronize(self.device)
        except Exception as e:   # an op that cannot be captured: time it eagerly, and say so
            torch.cuda.synchronize(self.device)
            self.graph_failures.append(f"{what}: {type(e).__name__}: {e}"[:300])
            return fn
        return graph.replay

    def randn(self, *shape: int, scale: float = 1.0) -> Any:
        return self.torch.randn(*shape, device=self.device, dtype=self.dtype) * scale


def open_backend(prefer: str = "auto", flush_bytes: int | None = None) -> Backend:
    """prefer: "auto" (CUDA when available), "cuda" (an error without it) or "cpu"."""
    if prefer not in ("auto", "cuda", "cpu"):
        raise ValueError(f"device must be auto, cuda or cpu, got {prefer!r}")
    torch = import_torch()
    use_gpu = prefer == "cuda" or (prefer == "auto" and torch.cuda.is_available())
    if use_gpu:
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' asked for, but torch sees no CUDA device")
        dev = torch.device("cuda", torch.cuda.current_device())
        l2 = getattr(torch.cuda.get_device_properties(dev), "L2_cache_size", 0) or GPU_FLUSH_DEFAULT // 2
        return Backend("cuda", torch, dev, torch.bfloat16, flush_bytes or 2 * l2)
    return Backend("cpu", torch, torch.device("cpu"), torch.float32,
                   flush_bytes if flush_bytes is not None else min(2 * cpu_llc_bytes(), CPU_FLUSH_CAP))


def cpu_llc_bytes() -> int:
    """The largest cache of cpu0 (sysfs), 32 MiB when it cannot be read."""
    best = 0
    for size in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = size.read_text().strip().upper()
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        try:
            best = max(best, int(text.rstrip("KMG")) * mult)
        except ValueError:
            continue
    return best or 32 << 20


def _cuda_event_timer(b: Backend) -> Callable[[Callable[[], object]], float]:
    torch = b.torch
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def timer(fn: Callable[[], object]) -> float:
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    return timer


def _perf_counter_timer(b: Backend) -> Callable[[Callable[[], object]], float]:
    def timer(fn: Callable[[], object]) -> float:
        t0 = time.perf_counter()
        fn()
        b.synchronize()
        return time.perf_counter() - t0
    return timer
