"""LlavaCollator: a list of LlavaDataset items -> one right-padded batch for LlavaForConditionalGeneration.

input_ids are padded with the tokenizer's pad id, labels with -100, attention_mask with 0; pixel_values
of the items that have an image are stacked in item order (text-only items have none), which is the order
in which the model fills the batch's image tokens.

    loader = DataLoader(dataset, batch_size=8, collate_fn=LlavaCollator(processor.tokenizer.pad_token_id))
"""

from __future__ import annotations

from lntune.data.conversation import IGNORE_INDEX
from lntune.errors import LntuneError


class LlavaCollator:
    """Right-pads input_ids / labels / attention_mask to the longest item and stacks pixel_values."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        if pad_token_id is None:
            raise LntuneError("LlavaCollator: the tokenizer has no pad token (set tokenizer.pad_token)")
        self.pad_token_id = int(pad_token_id)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, items: list[dict]) -> dict:
        import torch

        length = max(len(item["input_ids"]) for item in items)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = {
            "input_ids": torch.full((len(items), length), self.pad_token_id, dtype=torch.long),
            "labels": torch.full((len(items), length), IGNORE_INDEX, dtype=torch.long),
            "attention_mask": torch.zeros((len(items), length), dtype=torch.long),
        }
        for row, item in enumerate(items):
            n = len(item["input_ids"])
            batch["input_ids"][row, :n] = item["input_ids"]
            batch["labels"][row, :n] = item["labels"]
            batch["attention_mask"][row, :n] = item["attention_mask"]
        pixels = [item["pixel_values"] for item in items if "pixel_values" in item]
        if pixels:
            batch["pixel_values"] = torch.stack(pixels)
        return batch
