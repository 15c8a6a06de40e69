"""Load a vision encoder (CLIP or SigLIP) and its image processor from a local HF directory.

A full CLIP/SigLIP checkpoint (text + vision) or a vision-only one both work; only the vision part is kept.
"""

from pathlib import Path

from lntune.errors import LntuneError

# model_type in config.json -> (vision model class name, feature strategy, extra tokens before patches)
_VISION_KINDS = {
    "clip": ("CLIPVisionModel", "default", 1),
    "clip_vision_model": ("CLIPVisionModel", "default", 1),
    "siglip": ("SiglipVisionModel", "full", 0),
    "siglip_vision_model": ("SiglipVisionModel", "full", 0),
}


def vision_kind(model_type: str):
    """(class name, vision_feature_select_strategy, num_additional_image_tokens) for a vision model_type."""
    if model_type not in _VISION_KINDS:
        raise LntuneError(
            f"unsupported vision encoder type {model_type!r}; supported: {', '.join(sorted(_VISION_KINDS))}"
        )
    return _VISION_KINDS[model_type]


def load_vision_tower(path, dtype=None):
    """(vision model, image processor, strategy, num_additional_image_tokens) from a local directory."""
    import transformers
    from transformers import AutoConfig, AutoImageProcessor

    path = Path(path)
    if not (path / "config.json").is_file():
        raise LntuneError(f"{path}: not a Hugging Face model directory (no config.json)")
    model_type = AutoConfig.from_pretrained(path).model_type
    class_name, strategy, extra = vision_kind(model_type)
    model = getattr(transformers, class_name).from_pretrained(path, dtype=dtype)
    processor = AutoImageProcessor.from_pretrained(path)
    return model, processor, strategy, extra


def hidden_tokens(vision, pixel_values, layer: int, drop_first: bool = True, chunk: int = 256):
    """A vision model's hidden states at `layer` for `pixel_values`, computed in chunks without gradients:
    (images, tokens, hidden), the first (CLS) token dropped when `drop_first`."""
    import torch

    start = 1 if drop_first else 0
    with torch.no_grad():
        return torch.cat([vision(pixel_values=pixel_values[k:k + chunk], output_hidden_states=True)
                          .hidden_states[layer][:, start:] for k in range(0, len(pixel_values), chunk)])
