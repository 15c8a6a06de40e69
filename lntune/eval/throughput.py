"""Questions per second of batched generation at several batch sizes (POPE-like yes/no questions).

    lntune eval --model DIR --bench-batch 1,8 [--bench-questions 32] [--max-new-tokens 16]

or `measure_throughput(model, processor, batch_sizes=(1, 8))` from Python (lntune bench can call it).
Every batch size answers the same questions about the same synthetic images, greedily, stopping at
EOS / end of turn as in `lntune eval`; one untimed batch warms the model up first.
"""

from __future__ import annotations

import time

from lntune.eval.generate import generate_batch, render_prompt
from lntune.eval.tasks.base import user_turn

OBJECTS = ("dog", "car", "chair", "cup", "person", "bicycle", "cat", "bottle")


def bench_questions(processor, n: int) -> tuple[list[str], list]:
    """n rendered prompts and images: 'Is there a <object> in the image?' over solid-colour squares."""
    from PIL import Image

    size = 224
    crop = getattr(processor.image_processor, "crop_size", None) or getattr(processor.image_processor, "size", None)
    if isinstance(crop, dict):
        size = crop.get("height") or crop.get("shortest_edge") or size
    prompts, images = [], []
    for i in range(n):
        question = f"Is there a {OBJECTS[i % len(OBJECTS)]} in the image?"
        prompts.append(render_prompt(processor, [user_turn(question)]))
        images.append(Image.new("RGB", (size, size), ((37 * i) % 256, (91 * i) % 256, (151 * i) % 256)))
    return prompts, images


def measure_throughput(model, processor, batch_sizes=(1, 8), questions: int = 32, max_new_tokens: int = 16) -> dict:
    """{"questions", "max_new_tokens", "batch_sizes": {b: {"seconds", "questions_per_s"}}, "speedup"}.

    speedup = questions/s of the last batch size over that of the first.
    """
    prompts, images = bench_questions(processor, questions)
    model.eval()
    generate_batch(model, processor, prompts[: max(batch_sizes)], images[: max(batch_sizes)], max_new_tokens)
    results = {}
    for batch_size in batch_sizes:
        started = time.perf_counter()
        for start in range(0, questions, batch_size):
            generate_batch(model, processor, prompts[start:start + batch_size], images[start:start + batch_size],
                           max_new_tokens)
        seconds = time.perf_counter() - started
        results[batch_size] = {"seconds": round(seconds, 3), "questions_per_s": round(questions / seconds, 3)}
    first, last = results[batch_sizes[0]], results[batch_sizes[-1]]
    return {"questions": questions, "max_new_tokens": max_new_tokens, "batch_sizes": results,
            "speedup": round(last["questions_per_s"] / first["questions_per_s"], 2)}


def format_throughput(result: dict) -> str:
    lines = [f"{result['questions']} questions, at most {result['max_new_tokens']} new tokens each",
             "batch  seconds  questions/s"]
    for batch_size, row in result["batch_sizes"].items():
        lines.append(f"{batch_size:>5}  {row['seconds']:>7.2f}  {row['questions_per_s']:>11.2f}")
    lines.append(f"speedup (batch {list(result['batch_sizes'])[-1]} vs {list(result['batch_sizes'])[0]}): "
                 f"{result['speedup']:.2f}x")
    return "\n".join(lines)
