"""System metrics of one task's process tree: CPU, memory, and GPUs through NVML.

Sampled by the task runner every few seconds and logged as the run's metrics
``sys/cpu_percent`` (summed over the tree, so 200 means two busy cores),
``sys/memory_mb`` (summed RSS), and, only when ``pynvml`` imports and the machine
has GPUs, ``sys/gpu_util`` (mean utilisation of the task's GPUs, percent) and
``sys/gpu_memory_mb`` (memory the tree's processes hold on them).

Operational traps:

- psutil's ``cpu_percent()`` compares with the previous call on the *same*
  ``Process`` object, so the sampler keeps one object per pid; a process seen for
  the first time reports its share only from the next sample on.
- The tree is the root and its descendants; a child that detached itself
  (double fork + ``setsid``) is no longer counted.
- NVML numbers devices in PCI bus order while CUDA, by default, puts the fastest
  first; ``CUDA_VISIBLE_DEVICES`` indices therefore match NVML indices only with
  ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (the local backend assigns NVML indices).
  https://docs.nvidia.com/cuda/cuda-c-programming-guide/index.html#env-vars
- Inside a container, NVML may report host pids: per-process GPU memory then
  matches nothing, and the device's used memory is reported instead.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["ProcessTreeSampler"]

log = logging.getLogger("runyard.sysmetrics")

_MB = 1024 * 1024


class ProcessTreeSampler:
    """Samples the process tree under ``pid``. Not thread-safe: one caller samples.

    Args:
        pid: the root process (the task's process-group leader).
        cuda_visible_devices: the task's ``CUDA_VISIBLE_DEVICES`` (``None``: unset,
            all GPUs; ``""``: none, so no GPU metrics).
    """

    def __init__(self, pid: int, cuda_visible_devices: str | None = None) -> None:
        import psutil

        self._psutil = psutil
        self._procs: dict[int, Any] = {}
        try:
            self._root = psutil.Process(pid)
        except psutil.NoSuchProcess:
            self._root = None
        self._nvml: Any = None
        self._gpus: list[Any] = []
        if cuda_visible_devices != "":
            self._init_nvml(cuda_visible_devices)
        self.sample()  # primes cpu_percent()

    # ---------------------------------------------------------------- sampling
    def retarget(self, pid: int) -> None:
        """Follow a new root process (the next setup step or the command)."""
        try:
            self._root = self._psutil.Process(pid)
        except self._psutil.NoSuchProcess:
            self._root = None

    def sample(self) -> dict[str, float]:
        """The current values; ``{}`` when the tree is gone."""
        psutil = self._psutil
        if self._root is None:
            return {}
        try:
            tree = [self._root, *self._root.children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return {}
        except psutil.AccessDenied:
            tree = [self._root]
        cpu = 0.0
        rss = 0
        seen: dict[int, Any] = {}
        for proc in tree:
            known = self._procs.get(proc.pid, proc)
            try:
                proc_rss = known.memory_info().rss
                if proc_rss == 0:  # a zombie (the task ended and is not reaped yet): nothing to measure
                    continue
                cpu += known.cpu_percent(None)
                rss += proc_rss
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue
            seen[proc.pid] = known
        self._procs = seen
        if not seen:
            return {}
        values = {"sys/cpu_percent": round(cpu, 1), "sys/memory_mb": round(rss / _MB, 1)}
        if self._gpus:
            values.update(self._gpu_values(set(seen)))
        return values

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError as e:  # changes nothing for the task
                log.debug("NVML shutdown failed: %s", e)
            self._nvml = None

    # -------------------------------------------------------------------- NVML
    def _init_nvml(self, visible: str | None) -> None:
        try:
            import pynvml
        except ImportError:
            return
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as e:  # no driver, or no GPU
            log.debug("NVML unavailable: %s", e)
            return
        if count == 0:
            pynvml.nvmlShutdown()
            return
        self._nvml = pynvml
        wanted = [v.strip() for v in visible.split(",") if v.strip()] if visible else [str(i) for i in range(count)]
        for item in wanted:
            try:
                if item.isdigit():
                    self._gpus.append(pynvml.nvmlDeviceGetHandleByIndex(int(item)))
                else:
                    self._gpus.append(pynvml.nvmlDeviceGetHandleByUUID(item))
            except pynvml.NVMLError as e:
                log.debug("NVML has no device %s: %s", item, e)

    def _gpu_values(self, pids: set[int]) -> dict[str, float]:
        nvml = self._nvml
        utils: list[float] = []
        mine = 0
        device_used = 0
        per_process_known = False
        for handle in self._gpus:
            try:
                utils.append(float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu))
                device_used += nvml.nvmlDeviceGetMemoryInfo(handle).used
                for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                    if p.pid in pids and p.usedGpuMemory is not None:
                        mine += p.usedGpuMemory
                        per_process_known = True
            except nvml.NVMLError as e:
                log.debug("NVML sample failed: %s", e)
        if not utils:
            return {}
        used = mine if per_process_known else device_used
        return {"sys/gpu_util": round(sum(utils) / len(utils), 1), "sys/gpu_memory_mb": round(used / _MB, 1)}
