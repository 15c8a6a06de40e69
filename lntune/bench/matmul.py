"""The machine's matrix-multiply rate on the model's own matmul shapes, measured in the same bench run.

The bench divides each row's FLOP floor per second by this rate (a CPU "MFU"). The shapes are the
decoder's: (tokens x hidden) @ (hidden x hidden), (hidden x intermediate) and (intermediate x hidden),
in the dtype the frozen weights run in. Each repeat times all three; the median repeat is reported, so a
neighbour's burst on a shared machine moves it little.

    python -m lntune.bench.matmul --hidden 576 --intermediate 1536 --tokens 1024
"""

from __future__ import annotations

import argparse
import statistics
import time


def matmul_gflops(hidden: int, intermediate: int, tokens: int = 1024, dtype: str = "float32", device: str = "cpu",
                  repeats: int = 5, min_seconds: float = 0.2) -> dict:
    """{"gflops": median rate per wall-clock second, "gflops_cpu": per second of this process's CPU time,
    "samples": [rate per repeat], "shapes": [...], "dtype", "device", "threads"}."""
    import torch

    torch_dtype = getattr(torch, dtype)
    shapes = [(tokens, hidden, hidden), (tokens, hidden, intermediate), (tokens, intermediate, hidden)]
    generator = torch.Generator(device="cpu").manual_seed(0)
    pairs = [(torch.randn(m, k, generator=generator).to(device, torch_dtype),
              torch.randn(k, n, generator=generator).to(device, torch_dtype)) for m, k, n in shapes]
    flops_per_round = sum(2 * m * k * n for m, k, n in shapes)

    def one_round():
        for a, b in pairs:
            torch.mm(a, b)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    one_round()  # warm-up: thread pools, kernel selection
    sync()
    start = time.perf_counter()
    one_round()
    sync()
    rounds = max(1, int(min_seconds / max(time.perf_counter() - start, 1e-6)))
    samples, cpu_samples = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(rounds):
            one_round()
        sync()
        samples.append(flops_per_round * rounds / (time.perf_counter() - start) / 1e9)
        cpu_samples.append(flops_per_round * rounds / max(time.process_time() - cpu_start, 1e-9) / 1e9)
    return {"gflops": statistics.median(samples), "gflops_cpu": statistics.median(cpu_samples), "samples": samples,
            "cpu_samples": cpu_samples, "shapes": shapes, "dtype": dtype, "device": device, "threads": torch.get_num_threads()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=576)
    parser.add_argument("--intermediate", type=int, default=1536)
    parser.add_argument("--tokens", type=int, default=1024)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    result = matmul_gflops(args.hidden, args.intermediate, args.tokens, args.dtype, args.device)
    print(f"{result['gflops']:.1f} GFLOP/s ({args.dtype}, {args.device}, {result['threads']} threads)")


if __name__ == "__main__":
    main()
