"""Batched generation for a LLaVA model: one image and one rendered prompt per question.

    from lntune.eval.generate import generate_batch, render_prompt
    prompt = render_prompt(processor, [{"role": "user", "content": "<image>\\nIs there a dog?"}])
    answers = generate_batch(model, processor, [prompt], [image], max_new_tokens=16)

Prompts are left-padded so every row's last prompt token sits at the same position and the new tokens
are appended after it (rows about the same image share their prompt's prefix instead when given `image_keys`:
lntune/eval/shared_prefix.py); decoding uses the KV cache, is greedy unless `do_sample=True`, and each row stops
at EOS or the chat template's end-of-turn token (the rest of the batch keeps going, the finished row
gets pad tokens that are cut off here). Given `settled` (greedy only), a row also stops once that
function of its text so far says more text could not change its scored answer (lntune/eval/settled.py).
With greedy decoding a batch gives the same tokens as one question at a time (tests/test_eval_generate.py
checks this on a tiny model).
"""

from __future__ import annotations

from typing import Callable

from lntune.errors import LntuneError

IMAGE_PLACEHOLDER = "<image>"
# End-of-turn tokens of the chat templates lntune meets (ChatML, Llama-3, Gemma); EOS covers Vicuna/Llama-2.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")


def render_prompt(processor, messages: list[dict]) -> str:
    """The prompt string for `messages`, rendered with the tokenizer's chat template plus the generation prompt.

    The image is the literal `<image>` placeholder in a user message; it is swapped for the processor's
    own image token when that differs, and expanded to the image-token count by the processor later.
    """
    tokenizer = getattr(processor, "tokenizer", processor)
    template = getattr(tokenizer, "chat_template", None) or getattr(processor, "chat_template", None)
    if not template:
        raise LntuneError(
            "the model's tokenizer has no chat template; give it one with "
            "lntune.data.templates.ensure_chat_template(tokenizer, 'chatml'|'vicuna_v1'|'llama2_chat')"
        )
    image_token = getattr(processor, "image_token", IMAGE_PLACEHOLDER) or IMAGE_PLACEHOLDER
    if image_token != IMAGE_PLACEHOLDER:
        messages = [{**m, "content": m["content"].replace(IMAGE_PLACEHOLDER, image_token)} for m in messages]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, chat_template=template)


def stop_token_ids(model, tokenizer) -> list[int]:
    """EOS ids of the model's generation config and the tokenizer, plus the end-of-turn tokens in the vocabulary."""
    ids = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if configured is not None:
        ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    # One token at a time: get_vocab() builds the whole vocabulary (~50 ms for SmolLM2's), and this runs per batch.
    for token in END_OF_TURN_TOKENS:
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is not None and tokenizer.convert_ids_to_tokens(token_id) == token:
            ids.add(token_id)
    return sorted(ids)


def generate_batch(model, processor, prompts: list[str], images: list, max_new_tokens: int = 32,
                   do_sample: bool = False, temperature: float = 1.0, top_k: int | None = None,
                   top_p: float | None = None, settled: Callable[[str], bool] | None = None,
                   image_keys: list | None = None) -> list[str]:
    """Generate one answer per (prompt, image) pair; returns the decoded new text of each row, stripped.

    `prompts` are rendered strings (see `render_prompt`), each with one `<image>` placeholder; `images`
    are PIL images in the same order. Greedy by default; `do_sample=True` samples with `temperature`
    (and `top_k` / `top_p` when given) from torch's global RNG. `settled(text)` (greedy only) ends a row
    early, once its answer so far is settled (lntune/eval/settled.py). `image_keys` name each row's image
    (a path): rows with the same key run their common prompt prefix once (lntune/eval/shared_prefix.py).
    """
    rows = generate_tokens(model, processor, prompts, images, max_new_tokens, do_sample=do_sample,
                           temperature=temperature, top_k=top_k, top_p=top_p, settled=settled,
                           image_keys=image_keys)
    return [decode_answer(processor, row) for row in rows]


def decode_answer(processor, row: list[int]) -> str:
    """The answer text of one row of new token ids, as `generate_batch` returns it."""
    return processor.tokenizer.decode(row, skip_special_tokens=True).strip()


def generate_tokens(model, processor, prompts: list[str], images: list, max_new_tokens: int = 32,
                    do_sample: bool = False, temperature: float = 1.0, top_k: int | None = None,
                    top_p: float | None = None, settled: Callable[[str], bool] | None = None,
                    image_keys: list | None = None, streamer=None) -> list[list[int]]:
    """The new token ids of each row, cut before its first stop token or after the token that settled its
    answer (`generate_batch` without decoding). `streamer` (one row only) is a transformers streamer: its
    `put` gets the prompt's ids, then each new token as it is chosen (`lntune serve` streams answers with it)."""
    import torch
    from transformers import GenerationConfig, StoppingCriteriaList

    from lntune.eval.settled import SettledAnswers
    from lntune.eval.shared_prefix import plan_shared_prefix
    from lntune.model.load import ready_for_inference

    if len(prompts) != len(images):
        raise ValueError(f"generate_tokens: {len(prompts)} prompts but {len(images)} images")
    if settled is not None and do_sample:
        raise ValueError("generate_tokens: stopping at a settled answer is for greedy decoding only")
    if not prompts:
        return []
    if streamer is not None and len(prompts) != 1:
        raise ValueError("generate_tokens: a streamer follows one row only")
    ready_for_inference(model)
    tokenizer = processor.tokenizer
    stops = stop_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    shared = None if image_keys is None else plan_shared_prefix(model, processor, prompts, images, image_keys, pad_id)
    if shared is not None:
        inputs = {"input_ids": shared.input_ids.to(model.device), "attention_mask": shared.attention_mask.to(model.device),
                  "past_key_values": shared.prefill(model)}
    else:
        inputs = processor(text=list(prompts), images=list(images), return_tensors="pt", padding=True,
                           padding_side="left").to(model.device)
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    options = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, num_beams=1, use_cache=True,
                   eos_token_id=stops, pad_token_id=pad_id)
    if do_sample:
        options.update(temperature=temperature, top_k=top_k, top_p=top_p)
    else:
        # A fresh config keeps the checkpoint's sampling defaults (temperature, top_p) out of greedy decoding.
        options.update(temperature=None, top_k=None, top_p=None)
    prompt_length = inputs["input_ids"].shape[1]
    criteria = [SettledAnswers(tokenizer, prompt_length, settled)] if settled is not None else []
    with torch.inference_mode():
        output = model.generate(**inputs, generation_config=GenerationConfig(**options),
                                stopping_criteria=StoppingCriteriaList(criteria), streamer=streamer)
    stop_set = set(stops)
    settled_at = criteria[0].lengths if criteria else {}
    return [_cut(row, stop_set, settled_at.get(n)) for n, row in enumerate(output[:, prompt_length:].tolist())]


def _cut(row: list[int], stop_set: set[int], settled_length: int | None) -> list[int]:
    """`row` before its first stop token, and no longer than `settled_length` when given."""
    end = next((i for i, token in enumerate(row) if token in stop_set), len(row))
    return row[: end if settled_length is None else min(end, settled_length)]
