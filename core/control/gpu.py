"""GPU inventory through NVML (``nvidia-ml-py``), with a clean empty answer when there is none.

Which job holds a GPU comes from the scheduler's assignment, not from NVML's process list: inside
a container NVML reports host PIDs that mean nothing here. ``W2S_FAKE_GPUS=/path/to.json`` (a list
of GpuInfo-shaped dicts) replaces the probe, for tests and UI snapshots on GPU-less machines.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FAKE_ENV = "W2S_FAKE_GPUS"
_NVML_LOCK = threading.Lock()
_last_error: str | None = None
_nvml_ready = False


@dataclass
class GpuInfo:
    index: int
    name: str
    uuid: str = ""
    util_pct: float | None = None
    mem_used_mb: float | None = None
    mem_total_mb: float | None = None
    temp_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    processes: list[dict[str, Any]] = field(default_factory=list)
    holder_job: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fake(path: str) -> list[GpuInfo]:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{FAKE_ENV}={path}: cannot read a GPU list ({exc})") from None
    known = set(GpuInfo.__dataclass_fields__)
    gpus = []
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        item = {k: v for k, v in dict(item).items() if k in known}
        item.setdefault("index", i)
        item.setdefault("name", f"Fake GPU {i}")
        gpus.append(GpuInfo(**item))
    return gpus


def _call(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except Exception:
        return None


def _nvml() -> list[GpuInfo]:
    global _last_error
    try:
        import pynvml
    except ImportError:
        _last_error = "nvidia-ml-py is not installed"
        return []
    global _nvml_ready
    with _NVML_LOCK:
        if not _nvml_ready:  # init once per process: it can take 100+ ms, and UIs probe every second
            try:
                pynvml.nvmlInit()
            except Exception as exc:  # no driver / no libnvidia-ml.so: the normal state on a CPU box
                _last_error = f"NVML unavailable ({exc.__class__.__name__})"
                return []
            _nvml_ready = True
        try:
            gpus = []
            for i in range(pynvml.nvmlDeviceGetCount()):
                h = pynvml.nvmlDeviceGetHandleByIndex(i)
                name = _call(pynvml.nvmlDeviceGetName, h) or f"GPU {i}"
                mem = _call(pynvml.nvmlDeviceGetMemoryInfo, h)
                util = _call(pynvml.nvmlDeviceGetUtilizationRates, h)
                power = _call(pynvml.nvmlDeviceGetPowerUsage, h)
                limit = _call(pynvml.nvmlDeviceGetEnforcedPowerLimit, h)
                procs = []
                for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
                    for p in _call(getattr(pynvml, getter, lambda _h: []), h) or []:
                        used = getattr(p, "usedGpuMemory", None)
                        procs.append({"pid": p.pid, "used_mb": used / 2**20 if used else None})
                gpus.append(GpuInfo(
                    index=i,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    uuid=str(_call(pynvml.nvmlDeviceGetUUID, h) or ""),
                    util_pct=float(util.gpu) if util is not None else None,
                    mem_used_mb=mem.used / 2**20 if mem is not None else None,
                    mem_total_mb=mem.total / 2**20 if mem is not None else None,
                    temp_c=_call(pynvml.nvmlDeviceGetTemperature, h, pynvml.NVML_TEMPERATURE_GPU),
                    power_w=power / 1000 if power is not None else None,
                    power_limit_w=limit / 1000 if limit is not None else None,
                    processes=procs,
                ))
            _last_error = None if gpus else "no NVIDIA GPU found by NVML"
            return gpus
        except Exception as exc:  # e.g. the driver went away: report, re-init next time
            _last_error = f"NVML error ({exc.__class__.__name__})"
            _call(pynvml.nvmlShutdown)
            _nvml_ready = False
            return []


def _holders(store: Any = None) -> dict[int, str]:
    """GPU index -> id of the starting/running job it is assigned to."""
    try:
        from core.common.workspace import paths
        from core.control.store import default_store

        if store is None:
            if not (paths().state / "jobs.json").exists():
                return {}
            store = default_store()
        holders: dict[int, str] = {}
        for job in store.table("jobs").hot():
            if job.get("state") in ("starting", "running"):
                for g in job.get("gpus") or []:
                    holders[int(g)] = job["id"]
        return holders
    except Exception:
        return {}


def probe(store: Any = None) -> list[GpuInfo]:
    """Every NVIDIA GPU with its live numbers and holder job; an empty list means no NVIDIA GPU."""
    fake = os.environ.get(FAKE_ENV)
    gpus = _fake(fake) if fake else _nvml()
    holders = _holders(store)
    for gpu in gpus:
        gpu.holder_job = holders.get(gpu.index, gpu.holder_job)
    return gpus


def no_gpu_reason() -> str:
    """Why :func:`probe` came back empty, for a one-line "no NVIDIA GPU" message."""
    return _last_error or "no NVIDIA GPU"


def visible_gpus() -> list[str]:
    """GPU ids a child may be pinned to: ``CUDA_VISIBLE_DEVICES`` entries, else every probed GPU."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if not os.environ.get("W2S_FAKE_GPUS"):  # a fake GPU feed (UI tests) must not pin real runs
        try:
            return [str(g.index) for g in probe()]
        except ImportError:
            pass
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001 - a broken CUDA install means CPU
        return []
