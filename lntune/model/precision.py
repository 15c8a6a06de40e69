"""Which floating-point format a CPU or GPU runs fastest, for presets that say `dtype: auto`.

    from lntune.model.precision import fastest_dtype
    fastest_dtype("cpu")   # "bfloat16" on CPUs with bf16 matrix instructions (AVX512-BF16, AMX), else "float32"
    fastest_attention(model, "cpu", torch.bfloat16)   # eager attention where SDPA's CPU kernel is the slower one

bf16 halves the bytes every matmul reads and, where the CPU has bf16 dot-product instructions, roughly
doubles their rate; where it has none, oneDNN emulates bf16 through fp32 and it is slower than fp32.
"""

from __future__ import annotations

from pathlib import Path

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU flags (Linux /proc/cpuinfo, or the text given) name a bf16 matrix instruction."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:  # not Linux: no way to tell, so no bf16
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def fastest_dtype(device: str) -> str:
    """"bfloat16" on a GPU with bf16 tensor cores (Ampere and later) or a CPU with native bf16 matmuls,
    "float32" otherwise."""
    if str(device).startswith("cuda"):
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported(including_emulation=False) else "float32"
    return "bfloat16" if cpu_has_native_bf16() else "float32"


def fastest_attention(model, device, dtype):
    """Eager attention for bf16/fp16 on a CPU, PyTorch's SDPA (as built) elsewhere; returns `model`.

    On short sequences (the world's prompts, ~70 tokens) torch's CPU flash kernel is slower in bf16 than plain
    matmuls and a softmax: a LayerNorm step's forward and backward took 1.4x as long, 64 greedy answers 1.2x
    (docs/benchmarks.md). In fp32 and on GPUs the kernel is the faster one."""
    import torch

    if torch.device(device).type == "cpu" and dtype in (torch.bfloat16, torch.float16):
        model.set_attn_implementation("eager")
    return model
