"""What every row of `lntune bench` trains on: the run config of a recipe and strategy, the model, and the
batches, in the order `lntune train` takes them.

    config = run_config(recipe, "layernorm")
    model, processor = build(recipe, config)
    micro = full_batches(dataset, config, count)     # the first `count` full micro-batches of epoch 0
    batches = synthetic_batches(recipe, count)       # "random" recipes: random tokens and pixels
"""

from __future__ import annotations

import torch

from lntune.errors import LntuneError


def run_config(recipe: dict, strategy: str, output_dir: str = "bench-unused", compile_layers: bool = False):
    """The RunConfig `lntune train` would get for this recipe and strategy (nothing is written to output_dir)."""
    from lntune.config import load_config

    data = {"output_dir": output_dir,
            "model": {"llm": recipe.get("llm", "embedded"), "vision": recipe.get("vision", "unused"), "dtype": recipe["dtype"]},
            "data": {"path": recipe.get("data", "unused"), "image_folder": recipe.get("images", "unused"),
                     "max_length": recipe.get("max_length", 2048), "max_samples": recipe.get("max_samples"),
                     "group_by_length": True, "num_workers": 0},
            "train": {"strategy": strategy, "batch_size": recipe["batch_size"], "lr": recipe["lr"], "seed": recipe["seed"],
                      "mixed_precision": recipe["mixed_precision"], "gradient_checkpointing": recipe["gradient_checkpointing"],
                      "lora": recipe["lora"], "max_grad_norm": 1.0, "weight_decay": 0.0, "compile": compile_layers}}
    return load_config(data=data)


def build(recipe: dict, config):
    """(model, processor or None) on the recipe's device, frozen weights in the recipe's dtype."""
    if recipe["kind"] == "files":
        from lntune.train.loop import build_model

        return build_model(config)
    from lntune.bench.presets import random_config
    from lntune.model.projector import LntuneLlavaForConditionalGeneration

    with torch.device(recipe["device"]):
        model = LntuneLlavaForConditionalGeneration._from_config(random_config(recipe["model"]), dtype=getattr(torch, recipe["dtype"]))
    return model, None


def image_token_counts(model, processor) -> tuple[int, int]:
    """(LLM tokens per image, vision-tower tokens per image)."""
    vision = model.config.vision_config
    patches = (vision.image_size // vision.patch_size) ** 2
    if processor is not None:
        from lntune.data.conversation import num_image_tokens

        image_tokens = num_image_tokens(processor)
        extra = processor.num_additional_image_tokens
    else:
        image_tokens, extra = patches, 1
    return image_tokens, patches + extra


def full_batches(dataset, config, count: int) -> list[list[int]]:
    """The first `count` full micro-batches (sample indices) of epoch 0 of `lntune train`'s plan for one
    process, so every row trains on the same batches of the same size."""
    from lntune.train import batches as plan

    d, t = config.data, config.train
    micro = plan.epoch_micro_batches(dataset.lengths, t.batch_size, t.seed, 0, d.group_by_length, 1)
    micro = [b for b in micro if len(b) == t.batch_size]
    if len(micro) < count:
        raise LntuneError(f"{d.path}: {len(dataset)} samples give {len(micro)} full batches of {t.batch_size}; "
                          f"the bench needs {count}")
    return micro[:count]


def synthetic_batches(recipe: dict, count: int):
    """Random token ids (image tokens after BOS) with the last `supervised_tokens` positions supervised."""
    from lntune.bench.presets import random_config

    config = random_config(recipe["model"])
    vision = config.vision_config
    image_tokens = (vision.image_size // vision.patch_size) ** 2
    size, length = recipe["batch_size"], 1 + image_tokens + recipe["text_tokens"]
    generator = torch.Generator().manual_seed(recipe["seed"])
    for _ in range(count):
        ids = torch.randint(3, config.text_config.vocab_size - 1, (size, length), generator=generator)
        ids[:, 0] = 1
        ids[:, 1:1 + image_tokens] = config.image_token_id
        labels = torch.full_like(ids, -100)
        labels[:, -recipe["supervised_tokens"]:] = ids[:, -recipe["supervised_tokens"]:]
        yield {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids),
               "pixel_values": torch.randn(size, 3, vision.image_size, vision.image_size, generator=generator)}
