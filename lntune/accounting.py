"""Exact parameter accounting per strategy, for a real model or a preset built on the meta device.

    lntune params --preset llava-llama2-7b --lora-r 64      # the paper's Table 2 #param column
    from lntune.accounting import strategy_table

`total` counts every parameter once (tied tensors once), the vision tower included, and the LoRA row's
total includes its adapters. Percent = 100 · trainable / total.
"""

from lntune.presets import preset
from lntune.strategies import STRATEGIES, LoraOptions, StrategySpec, apply_strategy, trainable_names

PAPER_VOCAB = 32000  # LLaMA-2's vocabulary; its last id stands in for the image token


def preset_config(name: str):
    """The LlavaConfig of a named preset of lntune/configs/presets/params.yaml (no weights)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    shapes = preset("params", name)
    shape = shapes["text"]
    text = LlamaConfig(vocab_size=PAPER_VOCAB, num_key_value_heads=shape["num_attention_heads"],
                       tie_word_embeddings=False, max_position_embeddings=4096, **shape)
    config = LlavaConfig(vision_config=CLIPVisionConfig(**shapes["vision"]), text_config=text,
                         image_token_id=PAPER_VOCAB - 1, vision_feature_layer=-2,
                         vision_feature_select_strategy="default", multimodal_projector_bias=True,
                         tie_word_embeddings=False)
    config.projector_type = "linear"
    return config


def meta_model(config):
    """A model with parameter shapes but no storage: seconds even for 13B."""
    import torch

    from lntune.model.projector import LntuneLlavaForConditionalGeneration

    with torch.device("meta"):
        return LntuneLlavaForConditionalGeneration(config)


def count(model, names: set[str]) -> tuple[int, int]:
    """(trainable, total) over unique tensors; a tied tensor trains if any of its names is in `names`."""
    aliases: dict[int, tuple] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        aliases.setdefault(id(param), (param, set()))[1].add(name)
    total = sum(param.numel() for param, _ in aliases.values())
    trainable = sum(param.numel() for param, tensor_names in aliases.values() if tensor_names & names)
    return trainable, total


def requires_grad_names(model) -> set[str]:
    """Every name of every parameter that currently trains (both names of a tied tensor)."""
    return {name for name, param in model.named_parameters(remove_duplicate=False) if param.requires_grad}


def strategy_table(model_factory, label: str, lora: LoraOptions | None = None, strategies=None,
                   include_final_norm: bool = False) -> dict:
    """{"model", "total", "strategies": {name: {"trainable", "percent", "total"}}}.

    `model_factory()` must return a fresh model: LoRA adds adapters, so its row needs its own copy.
    """
    lora = lora or LoraOptions()
    model = model_factory()
    rows = {}
    base_total = None
    for name in strategies or STRATEGIES:
        spec = StrategySpec(name, include_final_norm=include_final_norm, lora=lora)
        target = model_factory() if name == "lora" else model
        names = apply_strategy(target, spec) if name == "lora" else trainable_names(target, spec)
        trainable, total = count(target, names)
        if name != "lora":
            base_total = total
        rows[name] = {"trainable": trainable, "total": total, "percent": 100.0 * trainable / total}
    return {"model": label, "total": base_total if base_total is not None else total, "strategies": rows}
