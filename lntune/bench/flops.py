"""The FLOP floor of one training step: the matrix-multiply work no implementation can avoid.

Every weight of a matmul costs 2 FLOPs per token it touches in the forward pass, 2 more for the gradient
of its input and 2 more for its own gradient when it trains — "6·N·tokens with weight gradients, about
4·N·tokens without". Where the weights sit decides which tokens they touch and which passes they need:

    vision tower   forward only (frozen, nothing before it trains): 2·n per image token (patches + CLS),
                   the patch convolution 2·n per patch
    projector      every image token: 2·n forward, + 2·n if it trains (its input needs no gradient)
    decoder        every non-pad token: 2·n forward + 2·n input gradient, + 2·n if it trains
                   (LoRA adapters are decoder weights too)
    output head    only the positions whose next token is supervised: 2·n + 2·n, + 2·n if it trains

Embedding lookups are not matmuls and count 0; so do biases, norms, activations and the attention score
products (QK^T, AV), which makes the floor a lower bound.

    from lntune.bench.flops import strategy_weight_groups, step_flop_floor
    groups = strategy_weight_groups(model.config, StrategySpec("layernorm"))   # or weight_groups(model)
    flops = step_flop_floor(groups, tokens=1200, supervised=300, images=8, image_tokens=16)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class WeightGroups:
    """Matmul weight counts of a LLaVA model, by where they run; `*_trained` is the part that trains."""

    vision_linear: int = 0
    vision_conv: int = 0
    projector: int = 0
    projector_trained: int = 0
    decoder: int = 0
    decoder_trained: int = 0
    head: int = 0
    head_trained: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def weight_groups(model) -> WeightGroups:
    """Walk the model's nn.Linear / nn.Conv2d modules (LoRA adapters included) and sort their weights."""
    from torch import nn

    groups = WeightGroups()
    for name, module in model.named_modules():
        if not isinstance(module, (nn.Linear, nn.Conv2d)):
            continue
        weight = module.weight
        n, trained = weight.numel(), weight.numel() if weight.requires_grad else 0
        if "vision_tower." in name:
            if isinstance(module, nn.Conv2d):
                groups.vision_conv += n
            else:
                groups.vision_linear += n
        elif "multi_modal_projector." in name:
            groups.projector += n
            groups.projector_trained += trained
        elif name == "lm_head" or name.endswith(".lm_head"):
            groups.head += n
            groups.head_trained += trained
        else:
            groups.decoder += n
            groups.decoder_trained += trained
    return groups


def strategy_weight_groups(config, spec) -> WeightGroups:
    """The groups of a LLaVA `config` with lntune's strategy `spec` applied, on the meta device (no memory):
    the floor of a strategy, whichever implementation runs it (peft's copies and wrappers do not count)."""
    from lntune.accounting import meta_model
    from lntune.strategies import apply_strategy

    model = meta_model(config)
    apply_strategy(model, spec)
    return weight_groups(model)


def step_flop_floor(groups: WeightGroups, tokens: int, supervised: int, images: int, image_tokens: int,
                    vision_tokens: int | None = None) -> int:
    """FLOPs of one step: `tokens` non-pad tokens (image tokens included), `supervised` predicted positions,
    `images` images of `image_tokens` LLM tokens each; the vision tower sees `vision_tokens` per image
    (default: image_tokens + 1, CLIP's patches + CLS)."""
    vision_tokens = image_tokens + 1 if vision_tokens is None else vision_tokens
    patches = image_tokens
    vision = 2 * images * (groups.vision_linear * vision_tokens + groups.vision_conv * patches)
    projector = images * image_tokens * (2 * groups.projector + 2 * groups.projector_trained)
    decoder = tokens * (4 * groups.decoder + 2 * groups.decoder_trained)
    head = supervised * (4 * groups.head + 2 * groups.head_trained)
    return vision + projector + decoder + head
