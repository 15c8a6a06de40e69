"""Exact parameter accounting per strategy, for a real model or a preset built on the meta device.

    lntune params --preset llava-llama2-7b --lora-r 64      # the paper's Table 2 #param column
    from lntune.accounting import strategy_table

`total` counts every parameter once (tied tensors once), the vision tower included, and the LoRA row's
total includes its adapters. Percent = 100 · trainable / total.
"""

from lntune.errors import LntuneError
from lntune.strategies import STRATEGIES, LoraOptions, StrategySpec, apply_strategy, trainable_names

# The paper's setting: CLIP ViT-L/14 at 224 px, a linear projector 1024→d with bias,
# LLaMA-2-style decoders with vocab 32000 and an untied output head.
_CLIP_L14 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                 patch_size=14, image_size=224, projection_dim=768)
_LLAMA = {
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32),
    "13b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40),
}
PRESETS = {
    "llava-llama2-7b": "7b",
    "llava-llama2-13b": "13b",
    "llava-vicuna-7b": "7b",  # Vicuna v1.1 has LLaMA's shapes and vocabulary
}


def preset_config(name: str):
    """The LlavaConfig of a named preset (no weights)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    if name not in PRESETS:
        raise LntuneError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    shape = _LLAMA[PRESETS[name]]
    text = LlamaConfig(vocab_size=32000, num_key_value_heads=shape["num_attention_heads"], tie_word_embeddings=False,
                       max_position_embeddings=4096, **shape)
    config = LlavaConfig(vision_config=CLIPVisionConfig(**_CLIP_L14), text_config=text, image_token_id=31999,
                         vision_feature_layer=-2, vision_feature_select_strategy="default",
                         multimodal_projector_bias=True, tie_word_embeddings=False)
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
