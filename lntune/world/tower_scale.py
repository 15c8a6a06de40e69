"""Give a trained CLIP vision tower's patch tokens the scale of the LLM's input embeddings, exactly.

Every sub-layer of a CLIP encoder reads its input through a LayerNorm, which ignores scale. Multiplying the
pre-encoder LayerNorm's affine parameters and every residual branch's output projection (attention out_proj,
MLP fc2) by c therefore multiplies every hidden state by c and changes nothing else (up to LayerNorm's eps).
lntune uses this to bring the world tower's patch tokens, ~5x larger than SmolLM2's input embeddings after
training, to the embeddings' mean norm: a projector trained with Adam then moves image tokens by steps the
size of word embeddings' differences rather than several times larger, and its initialisation needs no
rescaling.

    from lntune.world.tower_scale import match_token_norm
    factor = match_token_norm(vision, pixel_values, target_norm=3.2, layer=-1)
"""

from __future__ import annotations


def scale_hidden_states(vision, factor: float) -> None:
    """Multiply every hidden state of a `CLIPVisionModel` (or its inner transformer) by `factor`, in place."""
    import torch

    inner = getattr(vision, "vision_model", vision)
    with torch.no_grad():
        inner.pre_layrnorm.weight.mul_(factor)
        inner.pre_layrnorm.bias.mul_(factor)
        for layer in inner.encoder.layers:
            for linear in (layer.self_attn.out_proj, layer.mlp.fc2):
                linear.weight.mul_(factor)
                linear.bias.mul_(factor)


def patch_tokens(vision, pixels, layer: int = -1, chunk: int = 256):
    """The patch tokens (CLS dropped) of `vision` at `layer` for `pixels`, in chunks: (images, patches, hidden)."""
    from lntune.model.vision import hidden_tokens

    return hidden_tokens(vision, pixels, layer, chunk=chunk)


def match_token_norm(vision, pixels, target_norm: float, layer: int = -1, chunk: int = 256) -> float:
    """Scale `vision` so that the mean L2 norm of its patch tokens at `layer` (CLS excluded) over `pixels` is
    `target_norm`. Returns the factor applied."""
    norm = patch_tokens(vision, pixels, layer, chunk).norm(dim=-1).flatten().mean()
    factor = target_norm / float(norm)
    scale_hidden_states(vision, factor)
    return factor
