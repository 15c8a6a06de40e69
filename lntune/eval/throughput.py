"""Questions per second of batched generation at several batch sizes (POPE-like yes/no questions).

    lntune eval --model DIR --bench-batch 1,8 [--bench-questions 32] [--max-new-tokens 16]

or `measure_throughput(model, processor, batch_sizes=(1, 8))` from Python (lntune bench can call it).
Every batch size answers the same questions about the same synthetic images, greedily, stopping at
EOS / end of turn as in `lntune eval`; one untimed batch warms the model up first. The batch sizes take
turns `repeats` times and each keeps its fastest pass: on a shared machine other processes only ever
slow a pass down, so the minimum is the least noisy estimate.
"""

from __future__ import annotations

import time

from lntune.eval.generate import generate_batch, render_prompt
from lntune.eval.tasks.base import user_turn

OBJECTS = ("dog", "car", "chair", "cup", "person", "bicycle", "cat", "bottle")


def bench_questions(processor, n: int) -> tuple[list[str], list]:
    """n rendered prompts and images: 'Is there a <object> in the image?' over solid-colour squares."""
    from PIL import Image

    size = _input_size(processor.image_processor)
    prompts, images = [], []
    for i in range(n):
        question = f"Is there a {OBJECTS[i % len(OBJECTS)]} in the image?"
        prompts.append(render_prompt(processor, [user_turn(question)]))
        images.append(Image.new("RGB", (size, size), ((37 * i) % 256, (91 * i) % 256, (151 * i) % 256)))
    return prompts, images


def _input_size(image_processor) -> int:
    """The side of the square the image processor feeds the vision tower (224 if it does not say)."""
    for attr, key in (("crop_size", "height"), ("size", "height"), ("size", "shortest_edge")):
        value = getattr(image_processor, attr, None)
        value = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
        if value:
            return int(value)
    return 224


def measure_throughput(model, processor, batch_sizes=(1, 8), questions: int = 32, max_new_tokens: int = 16,
                       repeats: int = 3, threads: int | None = None) -> dict:
    """Questions/s of each batch size on the same questions.

    Returns {"questions", "max_new_tokens", "repeats", "threads", "load_average", "batch_sizes": {b:
    {"seconds", "questions_per_s", "cpu_seconds", "questions_per_cpu_s", "all_seconds"}}, "speedup",
    "cpu_speedup"}. seconds (wall clock) and cpu_seconds (this process's CPU time) are each the
    smallest over `repeats` passes; speedup compares the last batch size's questions/s with the first's.
    With one thread the CPU time is what a quiet machine's wall clock would be, so cpu_speedup is the
    figure to trust on a shared machine (load_average, the 1-minute load before and after, shows how
    busy it was). `threads` sets torch's CPU threads for the measurement and is restored after.
    """
    import torch

    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _measure(model, processor, tuple(batch_sizes), questions, max_new_tokens, repeats)
    finally:
        torch.set_num_threads(previous_threads)


def _measure(model, processor, batch_sizes, questions, max_new_tokens, repeats) -> dict:
    import os

    import torch

    load_before = os.getloadavg()[0]
    prompts, images = bench_questions(processor, questions)
    model.eval()
    generate_batch(model, processor, prompts[: max(batch_sizes)], images[: max(batch_sizes)], max_new_tokens)
    wall = {batch_size: [] for batch_size in batch_sizes}
    cpu = {batch_size: [] for batch_size in batch_sizes}
    for _ in range(repeats):
        for batch_size in batch_sizes:
            started, cpu_started = time.perf_counter(), time.process_time()
            for start in range(0, questions, batch_size):
                generate_batch(model, processor, prompts[start:start + batch_size],
                               images[start:start + batch_size], max_new_tokens)
            wall[batch_size].append(round(time.perf_counter() - started, 3))
            cpu[batch_size].append(round(time.process_time() - cpu_started, 3))
    results = {b: {"seconds": min(wall[b]), "questions_per_s": round(questions / min(wall[b]), 3),
                   "cpu_seconds": min(cpu[b]), "questions_per_cpu_s": round(questions / min(cpu[b]), 3),
                   "all_seconds": wall[b]}
               for b in batch_sizes}
    first, last = results[batch_sizes[0]], results[batch_sizes[-1]]
    return {"questions": questions, "max_new_tokens": max_new_tokens, "repeats": repeats,
            "threads": torch.get_num_threads(), "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "batch_sizes": results, "speedup": round(last["questions_per_s"] / first["questions_per_s"], 2),
            "cpu_speedup": round(last["questions_per_cpu_s"] / first["questions_per_cpu_s"], 2)}


def format_throughput(result: dict) -> str:
    lines = [f"{result['questions']} questions, at most {result['max_new_tokens']} new tokens each, "
             f"best of {result['repeats']} passes, {result['threads']} CPU thread(s), "
             f"load average {result['load_average'][0]} -> {result['load_average'][1]}",
             "batch  wall s  questions/s  CPU s  questions/CPU s"]
    for batch_size, row in result["batch_sizes"].items():
        lines.append(f"{batch_size:>5}  {row['seconds']:>6.2f}  {row['questions_per_s']:>11.2f}  "
                     f"{row['cpu_seconds']:>5.2f}  {row['questions_per_cpu_s']:>15.2f}")
    sizes = list(result["batch_sizes"])
    lines.append(f"speedup (batch {sizes[-1]} vs {sizes[0]}): {result['speedup']:.2f}x wall clock, "
                 f"{result['cpu_speedup']:.2f}x CPU time")
    return "\n".join(lines)
