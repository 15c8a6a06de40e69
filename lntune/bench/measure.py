"""How `lntune bench` measures a row: timestamps (wall clock and CPU time), peak memory, trainable
parameters, tokens, and the row dict built from them.

    peak = PeakMemory("cpu"); peak.reset()
    ends = [stamp("cpu")]; ...one step...; ends.append(stamp("cpu"))
    row = summarize(job, ends, counts, groups, image_tokens, vision_tokens, peak, model, extra={})

Peak memory is counted from `reset()` (on CPU: the peak resident set, reset through /proc/self/clear_refs;
on CUDA: max_memory_allocated), so a row called after model building compares training, not loading.
"""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path

import torch

from lntune.bench.flops import step_flop_floor


class PeakMemory:
    """Peak memory since `reset()`: CUDA max_memory_allocated, or the CPU peak resident set (VmHWM)."""

    def __init__(self, device: str):
        self.device = device
        self.scope = "since reset"
        self.at_reset_mb = 0.0

    def reset(self) -> None:
        gc.collect()
        if self.device == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            return
        _malloc_trim()  # hand freed build-time heap back, so every row starts from its live memory
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.scope = "whole process (peak RSS could not be reset)"
        self.at_reset_mb = self.current_mb()

    def current_mb(self) -> float:
        """Memory in use now: CUDA memory_allocated, or the resident set (VmRSS)."""
        if self.device == "cuda":
            return torch.cuda.memory_allocated() / 2**20
        return _status_kb("VmRSS") / 1024

    def peak_mb(self) -> float:
        if self.device == "cuda":
            return torch.cuda.max_memory_allocated() / 2**20
        peak = _status_kb("VmHWM")
        if peak:
            return peak / 1024
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _status_kb(field: str) -> int:
    """A field of /proc/self/status in KiB (0 where there is no /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _malloc_trim() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def count_trainable(model) -> tuple[int, int]:
    """(trainable, total) over unique tensors."""
    from lntune.accounting import count, requires_grad_names

    return count(model, requires_grad_names(model))


def stamp(device: str) -> tuple[float, float]:
    """(wall clock, this process's CPU time) once the device is idle."""
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter(), time.process_time()


def batch_counts(batch: dict) -> dict:
    return {"tokens": int(batch["attention_mask"].sum()), "supervised": int((batch["labels"][:, 1:] != -100).sum()),
            "images": int(batch["pixel_values"].shape[0]) if "pixel_values" in batch else 0}


def summarize(job: dict, ends: list[tuple], counts: list[dict], groups, image_tokens: int, vision_tokens: int,
              peak: PeakMemory, model, extra: dict) -> dict:
    """The row: median timed step (wall clock, and CPU time of the process), tokens/s over the timed steps,
    peak memory, trainable parameters, FLOP floor. `ends` holds a `stamp()` before the first step and after each."""
    warmup = job["warmup"]
    times = [b[0] - a[0] for a, b in zip(ends[:-1], ends[1:])][warmup:]
    cpu_times = [b[1] - a[1] for a, b in zip(ends[:-1], ends[1:])][warmup:]
    timed = counts[warmup:]
    floors = [step_flop_floor(groups, c["tokens"], c["supervised"], c["images"], image_tokens, vision_tokens) for c in timed]
    trainable, total = count_trainable(model)
    seconds = sum(times)
    text = model.config.get_text_config()
    return {"impl": job["impl"], "strategy": job["strategy"], "variant": job.get("variant", ""),
            "step_time_s": statistics.median(times), "tokens_per_s": sum(c["tokens"] for c in timed) / seconds,
            "peak_mem_mb": peak.peak_mb(), "peak_mem_scope": peak.scope, "mem_at_start_mb": peak.at_reset_mb, "trainable": trainable, "total": total,
            "flop_floor": statistics.mean(floors), "floor_gflops": sum(floors) / seconds / 1e9,
            "step_times_s": times, "cpu_step_times_s": cpu_times, "steps": timed, "weights": groups.to_dict(), "image_tokens": image_tokens,
            "vision_tokens": vision_tokens, "hidden_size": text.hidden_size, "intermediate_size": text.intermediate_size,
            **extra}
