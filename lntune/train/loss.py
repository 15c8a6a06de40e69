"""The training loss, computed where it is needed: the output head runs only on supervised positions.

The LM head of a 49k-token vocabulary is a large share of a small LLM's compute; projecting only the
positions whose next token is supervised (labels != -100) skips that work for image and prompt tokens.
The loss is a token *sum* divided by a caller-given divisor, so that micro-batches and processes add up
to the token mean of the whole optimizer step (exactly what one process with the global batch computes).
"""

import torch
import torch.nn.functional as F
from torch import nn


class SupervisedLoss(nn.Module):
    """Wraps a LLaVA model: forward(batch, divisor) -> summed cross-entropy / divisor."""

    def __init__(self, mllm):
        super().__init__()
        self.mllm = mllm

    def forward(self, input_ids, attention_mask, labels, pixel_values, divisor):
        hidden = self.mllm.model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values,
                                 use_cache=False).last_hidden_state
        targets = labels[:, 1:]
        keep = targets != -100
        logits = self.mllm.lm_head(hidden[:, :-1][keep])
        return F.cross_entropy(logits.float(), targets[keep], reduction="sum") / divisor


def supervised_tokens(labels: torch.Tensor) -> int:
    return int((labels[:, 1:] != -100).sum())
