"""Export a trained lntune model as a plain Hugging Face LLaVA checkpoint (with processor).

    lntune export --model runs/stage2 --out exported/          # then LlavaForConditionalGeneration.from_pretrained
LoRA adapters are merged into their base weights; the paper's linear projector becomes HF's two-layer
projector with an identity activation and an identity second layer, which computes the same function.
"""

from pathlib import Path

import torch

from lntune.model.load import load_mllm, save_mllm
from lntune.model.projector import linear_to_identity_mlp, projector_type


def merge_lora(model) -> int:
    """Fold every LoRA adapter into its base layer and remove the adapter modules; returns how many."""
    from peft.tuners.lora import LoraLayer

    merged = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge(safe_merge=True)
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, module.get_base_layer())
            merged += 1
    return merged


def to_plain_llava(model):
    """An HF `LlavaForConditionalGeneration` equal in function to `model` (a linear projector rewritten)."""
    from transformers import LlavaForConditionalGeneration

    if projector_type(model.config) != "linear":
        return model
    config = model.config
    state = linear_to_identity_mlp(model.state_dict(), config.text_config.hidden_size, config.multimodal_projector_bias)
    config.projector_type = "mlp2x_gelu"
    config.projector_hidden_act = "linear"  # identity: linear_2(act(linear_1(x))) == linear_1(x)
    with torch.device("meta"):
        plain = LlavaForConditionalGeneration(config)
    plain.load_state_dict(state, strict=True, assign=True)
    if getattr(config, "tie_word_embeddings", False):
        plain.tie_weights()
    plain.generation_config = model.generation_config
    return plain


def export_hf(run_dir, out) -> Path:
    model, processor = load_mllm(run_dir)
    merge_lora(model)
    return save_mllm(to_plain_llava(model), processor, Path(out), kind=EXPORT)


EXPORT = "export"  # the kind of folder an export writes (lntune/ownership.py)
