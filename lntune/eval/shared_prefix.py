"""Run the part of the prompt that several questions about one image share once, not once per question.

POPE asks about eighteen questions per image (six per split, three splits, the positive ones repeated) and
a LLaVA prompt puts the image first, so most of a batch's prefill is the same chat header and image tokens
again and again. Here a batch's rows are grouped by image; the longest token prefix every row shares with
the others of its group (it must hold all of the row's image tokens) is run once per image, its KV cache
is copied to the rows, and each row's own remainder (the question) follows. Remainders of different
lengths are padded in the middle, between the prefix and the question: the attention mask hides the pads
and the positions count real tokens only, so every row sees exactly the tokens it would see alone.

    from lntune.eval.shared_prefix import plan_shared_prefix
    batch = plan_shared_prefix(model, processor, prompts, images, image_keys, pad_id)  # None: no gain
    cache = batch.prefill(model)
    model.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask, past_key_values=cache, ...)
    model(**batch.remainder_inputs(model, cache), logits_to_keep=1)  # one forward, logits at each row's end

The numbers equal the unshared computation's up to floating-point rounding (other matrix shapes);
tests/test_eval_shared_prefix.py checks greedy tokens and yes/no scores against it on a tiny model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SharedPrefixBatch:
    input_ids: torch.Tensor  # [rows, prefix + longest remainder]: prefix, middle pads, remainder
    attention_mask: torch.Tensor  # 0 on the middle pads
    prefix_length: int
    prefix_rows: list[int]  # for each distinct image, the row whose prefix (and pixels) is run
    row_prefix: torch.Tensor  # [rows]: index into prefix_rows of each row's image
    pixel_values: torch.Tensor  # [distinct images, ...]

    @property
    def distinct_images(self) -> int:
        return len(self.prefix_rows)

    def prefill(self, model):
        """The KV cache of every row's prefix (run once per distinct image, then copied to its rows)."""
        prefix = self.input_ids[self.prefix_rows, : self.prefix_length].to(model.device)
        with torch.inference_mode():
            output = model(input_ids=prefix, pixel_values=self.pixel_values.to(model.device, model.dtype),
                           use_cache=True, logits_to_keep=1)
        cache = output.past_key_values
        cache.reorder_cache(self.row_prefix.to(model.device))
        return cache

    def remainder_inputs(self, model, cache) -> dict:
        """Keyword arguments for one forward of the rows' remainders on top of `cache`; the remainders end
        together, so the last position holds every row's last token."""
        positions = (self.attention_mask.cumsum(-1) - 1).clamp(min=0)[:, self.prefix_length:]
        return {"input_ids": self.input_ids[:, self.prefix_length:].to(model.device),
                "attention_mask": self.attention_mask.to(model.device), "position_ids": positions.to(model.device),
                "past_key_values": cache}


def can_share_prefix(model) -> bool:
    """Whether `model` can take a copied prefix cache with pads in the middle: its text model attends to every
    earlier position (a sliding window or chunked attention counts array slots, pads included, so middle pads
    would push the prefix out of a row's window), and its generation config names no cache of its own
    (generate refuses a given cache beside a `cache_implementation`)."""
    config = getattr(model.config, "text_config", model.config)
    windowed = getattr(config, "sliding_window", None) or getattr(config, "attention_chunk_size", None)
    if getattr(config, "use_sliding_window", True) is False:
        windowed = None
    layer_types = set(getattr(config, "layer_types", None) or ["full_attention"])
    cache_implementation = getattr(getattr(model, "generation_config", None), "cache_implementation", None)
    return not windowed and layer_types == {"full_attention"} and cache_implementation is None


def plan_shared_prefix(model, processor, prompts: list[str], images: list, image_keys: list,
                       pad_id: int = 0) -> SharedPrefixBatch | None:
    """The shared-prefix layout of a batch for `model`, or None where it would not help or cannot be used: every
    row has its own image, the model cannot take a shared prefix (`can_share_prefix`) or has no image token, a
    row's image tokens fall after what it shares with its group (an image placed after the question), or the
    processor gives other than one pixel tensor per image."""
    image_token_id = getattr(model.config, "image_token_id", None)
    if len(set(image_keys)) == len(image_keys) or image_token_id is None or not can_share_prefix(model):
        return None
    encoded = processor(text=list(prompts), images=list(images), return_tensors="pt", padding=True,
                        padding_side="right")
    ids, mask, pixels = encoded["input_ids"], encoded["attention_mask"], encoded["pixel_values"]
    if pixels.shape[0] != len(prompts):
        return None
    lengths = mask.sum(1).tolist()
    first_of = {}
    for row, key in enumerate(image_keys):
        first_of.setdefault(key, row)
    prefix_length = min(lengths) - 1  # every row keeps at least one token of its own to run
    for row, key in enumerate(image_keys):
        leader = first_of[key]
        if leader != row:
            n = min(lengths[row], lengths[leader])
            differs = (ids[row, :n] != ids[leader, :n]).nonzero()
            prefix_length = min(prefix_length, int(differs[0, 0]) if len(differs) else n)
    image_positions = (ids == image_token_id) & mask.bool()
    last_image_token = [int(row.nonzero().max()) if row.any() else -1 for row in image_positions]
    if prefix_length <= max(last_image_token):
        return None
    remainder = max(lengths) - prefix_length
    input_ids = torch.full((len(prompts), prefix_length + remainder), pad_id, dtype=ids.dtype)
    attention_mask = torch.zeros_like(input_ids)
    for row, length in enumerate(lengths):
        own = length - prefix_length
        input_ids[row, :prefix_length] = ids[row, :prefix_length]
        input_ids[row, prefix_length + remainder - own:] = ids[row, prefix_length:length]
        attention_mask[row, :prefix_length] = 1
        attention_mask[row, prefix_length + remainder - own:] = 1
    leaders = list(first_of.values())
    row_prefix = torch.tensor([leaders.index(first_of[key]) for key in image_keys])
    return SharedPrefixBatch(input_ids, attention_mask, prefix_length, leaders, row_prefix, pixels[leaders])


def group_by_image(image_keys: list, lengths: list[int]) -> list[int]:
    """An order of the rows (their image keys and prompt lengths) that keeps the rows about one image next to
    each other, so they share a batch and its prefix: images by their longest prompt, longest first, and
    within an image longest first. With every image distinct this is simply longest first (ties in the
    given order)."""
    groups: dict = {}
    for index, key in enumerate(image_keys):
        groups.setdefault(key, []).append(index)
    ordered = sorted(groups.values(), key=lambda members: -max(lengths[i] for i in members))
    return [i for members in ordered for i in sorted(members, key=lambda i: -lengths[i])]
