"""The paper's *linear* vision-language projector inside an HF LLaVA model.

HF's `LlavaMultiModalProjector` is always two layers (linear_1 → act → linear_2). The paper (LLaVA v0)
uses one linear layer. `LinearProjector` keeps HF's parameter name `linear_1`, and
`LntuneLlavaForConditionalGeneration` is an HF LLaVA model that installs it when
`config.projector_type == "linear"`, so `save_pretrained` / `from_pretrained` work unchanged.
For plain `transformers`, `lntune export` rewrites the linear projector as an exactly equivalent
two-layer one (identity activation, identity linear_2).
"""

import torch
from torch import nn
from transformers import LlavaForConditionalGeneration

PROJECTOR_TYPES = ("linear", "mlp2x_gelu")


class LinearProjector(nn.Module):
    """One linear map from vision features to the LLM's hidden size (parameter names as HF's linear_1)."""

    def __init__(self, config):
        super().__init__()
        layers = 1 if isinstance(config.vision_feature_layer, int) else len(config.vision_feature_layer)
        self.linear_1 = nn.Linear(
            config.vision_config.hidden_size * layers,
            config.text_config.hidden_size,
            bias=config.multimodal_projector_bias,
        )

    def forward(self, image_features):
        return self.linear_1(image_features)


class LntuneLlavaForConditionalGeneration(LlavaForConditionalGeneration):
    """An HF LLaVA model whose projector follows `config.projector_type` ("linear" or "mlp2x_gelu")."""

    def __init__(self, config):
        super().__init__(config)
        if projector_type(config) == "linear":
            self.model.multi_modal_projector = LinearProjector(config)


def projector_type(config) -> str:
    return getattr(config, "projector_type", "mlp2x_gelu")


def linear_to_identity_mlp(state_dict: dict, hidden_size: int, bias: bool) -> dict:
    """Rewrite a linear projector's weights as HF's two-layer projector computing the same function."""
    out = dict(state_dict)
    ref = next(v for k, v in state_dict.items() if k.endswith("multi_modal_projector.linear_1.weight"))
    prefix = next(k for k in state_dict if k.endswith("multi_modal_projector.linear_1.weight"))[: -len("linear_1.weight")]
    out[prefix + "linear_2.weight"] = torch.eye(hidden_size, dtype=ref.dtype)
    if bias:
        out[prefix + "linear_2.bias"] = torch.zeros(hidden_size, dtype=ref.dtype)
    return out
