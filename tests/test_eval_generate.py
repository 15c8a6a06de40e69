"""Batched generation on a tiny random LLaVA: left-padded greedy batches give exactly the tokens of
one-at-a-time greedy decoding, rows stop at their stop tokens, sampling follows torch's seed."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_eval_helpers import color_image, tiny_llava  # noqa: E402

from lntune.eval.generate import generate_batch, generate_tokens, render_prompt, stop_token_ids  # noqa: E402

QUESTIONS = [
    "Is there a dog in the image?",
    "What color is the ball?\nAnswer the question using a single word or phrase.",
    "yes",
    "Please provide a description of the picture. A red square and a blue circle on a white ground.",
    "left right",
]


@pytest.fixture(scope="module")
def tiny():
    return tiny_llava(seed=0)


def _inputs(processor):
    prompts = [render_prompt(processor, [{"role": "user", "content": "<image>\n" + q}]) for q in QUESTIONS]
    images = [color_image(i) for i in range(len(QUESTIONS))]
    return prompts, images


def test_batched_greedy_equals_one_at_a_time(tiny):
    model, processor = tiny
    prompts, images = _inputs(processor)
    lengths = {len(processor.tokenizer(p)["input_ids"]) for p in prompts}
    assert len(lengths) == len(prompts)  # every row is padded differently
    single = [generate_tokens(model, processor, [p], [i], max_new_tokens=8)[0] for p, i in zip(prompts, images)]
    assert all(len(row) > 0 for row in single)
    assert len({tuple(row) for row in single}) > 1
    assert generate_tokens(model, processor, prompts, images, max_new_tokens=8) == single
    assert generate_tokens(model, processor, prompts[:3], images[:3], max_new_tokens=8) == single[:3]
    texts = generate_batch(model, processor, prompts, images, max_new_tokens=8)
    assert texts == [processor.tokenizer.decode(row, skip_special_tokens=True).strip() for row in single]


def test_rows_stop_at_their_stop_token(tiny):
    model, processor = tiny
    prompts, images = _inputs(processor)
    free = generate_tokens(model, processor, prompts, images, max_new_tokens=8)
    stop = free[0][2]  # pretend the third token of row 0 ends the turn
    assert stop not in free[0][:2]
    before = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [processor.tokenizer.eos_token_id, stop]
    try:
        assert stop in stop_token_ids(model, processor.tokenizer)
        cut = generate_tokens(model, processor, prompts, images, max_new_tokens=8)
    finally:
        model.generation_config.eos_token_id = before
    assert cut[0] == free[0][:2]
    for row_free, row_cut in zip(free, cut):
        expected = row_free[: row_free.index(stop)] if stop in row_free else row_free
        assert row_cut == expected


def test_stop_tokens_include_the_end_of_turn(tiny):
    model, processor = tiny
    im_end = processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert im_end in stop_token_ids(model, processor.tokenizer)


def test_sampling_follows_the_torch_seed(tiny):
    import torch

    model, processor = tiny
    prompts, images = _inputs(processor)
    runs = []
    for seed in (1, 1, 2):
        torch.manual_seed(seed)
        runs.append(generate_tokens(model, processor, prompts, images, max_new_tokens=8, do_sample=True,
                                    temperature=5.0))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_throughput_measure_reports_each_batch_size(tiny):
    from lntune.eval.throughput import bench_questions, format_throughput, measure_throughput

    model, processor = tiny
    prompts, images = bench_questions(processor, 3)
    assert prompts[1] == "<|im_start|>user\n<image>\nIs there a car in the image?<|im_end|>\n<|im_start|>assistant\n"
    assert images[0].size == (32, 32)
    result = measure_throughput(model, processor, batch_sizes=(1, 4), questions=4, max_new_tokens=2, repeats=2)
    assert list(result["batch_sizes"]) == [1, 4] and result["repeats"] == 2
    for row in result["batch_sizes"].values():
        assert len(row["all_seconds"]) == 2 and row["seconds"] == min(row["all_seconds"])
        assert row["questions_per_s"] == round(4 / row["seconds"], 3)
    rate = result["batch_sizes"]
    assert result["speedup"] == round(rate[4]["questions_per_s"] / rate[1]["questions_per_s"], 2)
    assert result["cpu_speedup"] == round(rate[4]["questions_per_cpu_s"] / rate[1]["questions_per_cpu_s"], 2)
    assert format_throughput(result).splitlines()[-1].startswith("speedup (batch 4 vs 1): ")
