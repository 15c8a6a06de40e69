"""The peak of live tensor memory during one training step, on any device: what the training state itself
takes, without the process's code, libraries or allocator slack.

    peak = tensor_peak(lambda: trainer.step([batch]), model, optimizer)
    peak["peak_bytes"]      # static state at the start + the largest rise seen while the step ran

Static state is counted exactly: the unique storages of the model's parameters, buffers and gradients and
of the optimizer's state tensors. The rise is read from PyTorch's profiler with `profile_memory=True`,
which records every allocation and free of the tensor allocators (size and time); their running sum,
in time order, peaks where the step's activations, gradients and temporaries together are largest.
Peak resident memory (what `lntune bench` reports as `peak_mem_mb`) also holds the interpreter, torch's
libraries (several hundred MB) and freed heap the C allocator keeps: right for "will it fit", wrong for
comparing strategies' training state with a model of it (lntune/memory_model.py).
"""

from __future__ import annotations

import torch


def static_bytes(model, optimizer=None, device: str = "cpu") -> int:
    """Bytes of the unique storages on `device` behind parameters, buffers, gradients and optimizer states."""
    seen: dict[int, int] = {}

    def add(tensor):
        if isinstance(tensor, torch.Tensor) and tensor.device.type == device:
            storage = tensor.untyped_storage()
            seen[storage.data_ptr() or id(storage)] = storage.nbytes()

    for param in model.parameters():
        add(param)
        add(param.grad)
    for buffer in model.buffers():
        add(buffer)
    if optimizer is not None:
        for state in optimizer.state.values():
            for value in state.values():
                add(value)
    return sum(seen.values())


def tensor_peak(step, model, optimizer=None, device: str = "cpu") -> dict:
    """Run `step()` once under the profiler: {"static_bytes", "rise_bytes", "peak_bytes", "end_bytes"} of
    `device`'s memory (end: static + what the step left allocated)."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    static = static_bytes(model, optimizer, device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=activities, profile_memory=True) as prof:
        step()
    allocations = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == device:
            allocations.append((node.start_time_ns, node.extra_fields.alloc_size))
        stack.extend(node.children)
    running = rise = 0
    for _, size in sorted(allocations):
        running += size
        rise = max(rise, running)
    return {"static_bytes": static, "rise_bytes": rise, "peak_bytes": static + rise, "end_bytes": static + running}
