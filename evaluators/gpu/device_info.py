"""What a measurement was taken on: device name, driver, clocks and temperature, recorded with every one.

On a GPU: NVML (the nvidia-ml-py package, when importable: microseconds a read) or `nvidia-smi`
(a subprocess, so its reading is reused for up to `SMI_REUSE_S`), plus torch's device properties.
On the CPU: the model name and current clock from /proc/cpuinfo, a thermal zone's temperature if the
machine exposes one. Only reads: nothing here changes a clock or a setting.
"""
from __future__ import annotations

import platform
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SMI_REUSE_S = 1.0
# fields every recent driver knows (one unknown field fails the whole query; throttle reasons come from NVML)
SMI_FIELDS = ("name", "driver_version", "clocks.sm", "clocks.mem", "temperature.gpu", "power.draw")


@dataclass(frozen=True)
class DeviceInfo:
    """Fixed facts about the device, read once."""

    kind: str                     # "cuda" or "cpu"
    name: str
    driver: str | None = None
    torch: str | None = None
    cuda: str | None = None
    memory_bytes: int | None = None
    multiprocessors: int | None = None
    l2_bytes: int | None = None
    host: str = field(default_factory=platform.node)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Snapshot:
    """Readings that change while measuring."""

    time_s: float
    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    throttle: str | None = None   # NVML's active clock-throttle (clock event) reasons, a bit mask

    def as_dict(self) -> dict:
        return asdict(self)


class DeviceProbe:
    """Reads DeviceInfo once and a Snapshot on demand."""

    def __init__(self, backend: Any | None = None) -> None:
        self.backend = backend
        self.gpu = backend is not None and backend.is_gpu
        self._nvml = _nvml_handle() if self.gpu else None
        self._smi_at = -1e9
        self._smi: dict[str, str] = {}
        self.info = self._gpu_info() if self.gpu else _cpu_info(backend)

    def snapshot(self) -> Snapshot:
        if not self.gpu:
            return Snapshot(time.time(), sm_clock_mhz=_cpu_mhz(), temperature_c=_thermal_c())
        if self._nvml is not None:
            return _nvml_snapshot(*self._nvml)
        smi = self._smi_reading()
        return Snapshot(time.time(), _num(smi.get("clocks.sm")), _num(smi.get("clocks.mem")),
                        _num(smi.get("temperature.gpu")), _num(smi.get("power.draw")))

    def _smi_reading(self) -> dict[str, str]:
        if time.monotonic() - self._smi_at > SMI_REUSE_S:
            self._smi = nvidia_smi()
            self._smi_at = time.monotonic()
        return self._smi

    def _gpu_info(self) -> DeviceInfo:
        torch, dev = self.backend.torch, self.backend.device
        props = torch.cuda.get_device_properties(dev)
        driver = self._smi_reading().get("driver_version")
        if driver is None and self._nvml is not None:
            driver = _decode(self._nvml[0].nvmlSystemGetDriverVersion())
        return DeviceInfo("cuda", props.name, driver, torch.__version__, torch.version.cuda,
                          int(props.total_memory), int(props.multi_processor_count),
                          int(getattr(props, "L2_cache_size", 0)) or None)


def nvidia_smi() -> dict[str, str]:
    """One nvidia-smi reading of SMI_FIELDS for GPU 0; {} when the tool is missing or fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {}
    try:
        out = subprocess.run([exe, f"--query-gpu={','.join(SMI_FIELDS)}", "--format=csv,noheader,nounits",
                              "-i", "0"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    values = [v.strip() for v in out.strip().splitlines()[0].split(",")] if out.strip() else []
    return {k: v for k, v in zip(SMI_FIELDS, values) if v and "N/A" not in v and "Not Supported" not in v}


def _nvml_handle():
    try:
        import pynvml
        pynvml.nvmlInit()
        return pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
    except Exception:   # not installed, or no driver reachable through it: nvidia-smi instead
        return None


def _nvml_snapshot(nvml, handle) -> Snapshot:
    def read(name: str, *args):
        try:
            return getattr(nvml, name)(handle, *args)
        except Exception:   # a reading this driver or package version does not offer
            return None
    power = read("nvmlDeviceGetPowerUsage")
    reasons = read("nvmlDeviceGetCurrentClocksEventReasons")
    if reasons is None:
        reasons = read("nvmlDeviceGetCurrentClocksThrottleReasons")
    return Snapshot(time.time(), read("nvmlDeviceGetClockInfo", nvml.NVML_CLOCK_SM),
                    read("nvmlDeviceGetClockInfo", nvml.NVML_CLOCK_MEM),
                    read("nvmlDeviceGetTemperature", nvml.NVML_TEMPERATURE_GPU),
                    power / 1e3 if power is not None else None,
                    hex(reasons) if reasons is not None else None)


def _decode(x) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _num(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _cpuinfo() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            out.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return out


def _cpu_info(backend: Any | None) -> DeviceInfo:
    name = _cpuinfo().get("model name") or platform.processor() or platform.machine()
    torch_version = backend.torch.__version__ if backend is not None else None
    return DeviceInfo("cpu", name, torch=torch_version, multiprocessors=_cpu_count())


def _cpu_count() -> int | None:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _cpu_mhz() -> float | None:
    return _num(_cpuinfo().get("cpu MHz"))


def _thermal_c() -> float | None:
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*/temp")):
        try:
            return int(zone.read_text().strip()) / 1e3
        except (OSError, ValueError):
            continue
    return None
