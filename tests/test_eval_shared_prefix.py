"""Shared-prefix prefill on a tiny random LLaVA: rows about one image run their common prefix once and still get
the tokens and scores of one question at a time; batches where nothing is shared, or where an image comes after
the text that differs, fall back to plain padding."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_eval_helpers import color_image, tiny_llava  # noqa: E402

from lntune.eval.generate import generate_tokens, render_prompt  # noqa: E402
from lntune.eval.shared_prefix import can_share_prefix, group_by_image, plan_shared_prefix  # noqa: E402

QUESTIONS = ["Is there a dog in the image?", "What color is the ball?\nAnswer the question using a single word.",
             "yes", "left right above below"]


def _rows(processor, images_per_question=3, image_first=True):
    prompts, images, keys = [], [], []
    for i in range(images_per_question):
        for q in QUESTIONS:
            content = f"<image>\n{q}" if image_first else f"{q}\n<image>"
            prompts.append(render_prompt(processor, [{"role": "user", "content": content}]))
            images.append(color_image(i))
            keys.append(f"image-{i}")
    return prompts, images, keys


def test_plan_covers_the_image_tokens_and_pads_in_the_middle():
    model, processor = tiny_llava(seed=0)
    prompts, images, keys = _rows(processor)
    image_token = model.config.image_token_id
    plan = plan_shared_prefix(model, processor, prompts, images, keys, pad_id=0)
    assert plan.distinct_images == 3 and plan.row_prefix.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    alone = [processor(text=[p], images=[i], return_tensors="pt")["input_ids"][0] for p, i in zip(prompts, images)]
    last_image_token = max(int((ids == image_token).nonzero().max()) for ids in alone)
    assert last_image_token < plan.prefix_length < min(len(ids) for ids in alone)
    for row, ids in enumerate(alone):  # the row's own tokens, in order, with pads only between prefix and rest
        kept = plan.input_ids[row][plan.attention_mask[row].bool()]
        assert torch.equal(kept, ids)
        assert plan.attention_mask[row, :plan.prefix_length].all() and plan.attention_mask[row, -1] == 1


def test_no_plan_when_nothing_is_shared_or_the_image_comes_late():
    model, processor = tiny_llava(seed=0)
    prompts, images, keys = _rows(processor, images_per_question=1)
    assert plan_shared_prefix(model, processor, prompts, images, [f"k{i}" for i in range(len(keys))]) is None
    late = _rows(processor, image_first=False)
    assert plan_shared_prefix(model, processor, *late) is None


def test_shared_prefix_generation_equals_one_question_at_a_time():
    model, processor = tiny_llava(seed=0)
    prompts, images, keys = _rows(processor)
    single = [generate_tokens(model, processor, [p], [i], max_new_tokens=8)[0] for p, i in zip(prompts, images)]
    assert len({tuple(row) for row in single}) > 3
    assert generate_tokens(model, processor, prompts, images, max_new_tokens=8, image_keys=keys) == single
    late_prompts, late_images, late_keys = _rows(processor, image_first=False)
    late_single = [generate_tokens(model, processor, [p], [i], max_new_tokens=8)[0]
                   for p, i in zip(late_prompts, late_images)]
    assert generate_tokens(model, processor, late_prompts, late_images, max_new_tokens=8,
                           image_keys=late_keys) == late_single


def test_shared_prefix_logits_equal_the_plain_forward():
    model, processor = tiny_llava(seed=0)
    prompts, images, keys = _rows(processor)
    plan = plan_shared_prefix(model, processor, prompts, images, keys)
    with torch.inference_mode():
        shared = model(**plan.remainder_inputs(model, plan.prefill(model)), logits_to_keep=1).logits[:, -1]
        for row, (p, i) in enumerate(zip(prompts, images)):
            alone = model(**processor(text=[p], images=[i], return_tensors="pt"), logits_to_keep=1).logits[0, -1]
            torch.testing.assert_close(shared[row], alone, rtol=1e-4, atol=1e-4)


def test_group_by_image_keeps_an_image_together_longest_first():
    assert group_by_image(["a", "b", "a", "c", "b"], [5, 9, 7, 1, 2]) == [1, 4, 2, 0, 3]
    assert group_by_image(["a", "b", "c"], [2, 3, 2]) == [1, 0, 2]  # all distinct: longest first, stable


def test_windowed_attention_or_a_configured_cache_runs_whole_prompts():
    model, processor = tiny_llava(seed=0)
    assert can_share_prefix(model)
    model.config.text_config.sliding_window = 16  # middle pads would count against the window
    assert not can_share_prefix(model)
    assert plan_shared_prefix(model, processor, *_rows(processor)) is None
    model.config.text_config.sliding_window = None
    model.config.text_config.layer_types = ["sliding_attention", "full_attention"]
    assert not can_share_prefix(model)
    model.config.text_config.layer_types = ["full_attention", "full_attention"]
    model.generation_config.cache_implementation = "static"  # generate refuses a given cache beside it
    assert not can_share_prefix(model)
    model.generation_config.cache_implementation = None
    assert can_share_prefix(model)
