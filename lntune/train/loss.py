"""The training loss, computed where it is needed: the output head runs only on supervised positions.

The LM head of a 49k-token vocabulary is a large share of a small LLM's compute; projecting only the
positions whose next token is supervised (labels != -100) skips that work for image and prompt tokens.
The loss is a token *sum* divided by a caller-given divisor, so that micro-batches and processes add up
to the token mean of the whole optimizer step (exactly what one process with the global batch computes).

The head and the cross-entropy are one step (`head_cross_entropy`): the supervised rows go through the
head a chunk at a time, and each chunk's gradients (softmax minus one-hot, times the head weight or the
hidden states) are taken right away, in the forward pass. The full logits and their log-softmax — rows x
vocabulary floats, several times the size of one layer's activations — are never held, and the peak
memory of a step (reached at the end of the forward pass) drops by that much. The FLOPs are the same.
A trained head instead holds its weight gradient from forward to backward; where that is the larger of
the two (a wide LLM with few supervised rows) the plain head + cross-entropy runs.

`SupervisedLoss` gives the LLM's RMSNorms the fused `F.rms_norm` call (lntune/train/fused_norms.py; same
values, one autograd node instead of six). `SupervisedLoss(model, compile_layers=True)` (`train.compile`)
also compiles each decoder block with `torch.compile` (dynamic shapes, one graph shared by all blocks): the
activations and rotary embeddings fuse, and cheap intermediates are recomputed in the backward pass instead
of kept. It pays a one-time compile (cached on disk by PyTorch for later runs); docs/benchmarks.md has the
measured gain. Off by default: tiny models and short runs never earn the compile time back.
"""

import torch
import torch.nn.functional as F
from torch import nn

from lntune.train.fused_norms import fuse_rms_norms

# Rows per chunk = this many logits / vocabulary size: 32 MB of fp32 logits at a time.
_CHUNK_ELEMENTS = 8 * 2**20


class SupervisedLoss(nn.Module):
    """Wraps a LLaVA model: forward(batch, divisor) -> summed cross-entropy / divisor."""

    def __init__(self, mllm, compile_layers: bool = False, fused_norms: bool = True):
        super().__init__()
        self.mllm = mllm
        if fused_norms:
            fuse_rms_norms(mllm)
        if compile_layers:
            for block in decoder_blocks(mllm):
                block.compile(dynamic=True)  # compiles the block's call in place: parameters and state_dict unchanged

    def forward(self, input_ids, attention_mask, labels, pixel_values, divisor):
        hidden = self.mllm.model(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values,
                                 use_cache=False).last_hidden_state
        targets = labels[:, 1:]
        keep = targets != -100
        return head_cross_entropy(hidden[:, :-1][keep], self.mllm.lm_head, targets[keep]) / divisor


def decoder_blocks(mllm) -> list[nn.Module]:
    """The LLM's decoder blocks of a LLaVA model (model.language_model.layers)."""
    layers = getattr(getattr(getattr(mllm, "model", None), "language_model", None), "layers", None)
    if layers is None:
        raise TypeError(f"{type(mllm).__name__}: no model.language_model.layers to compile")
    return list(layers)


def head_cross_entropy(hidden: torch.Tensor, head: nn.Module, targets: torch.Tensor) -> torch.Tensor:
    """sum over rows of cross_entropy(head(hidden), targets), in fp32 (autocast applies to the matmuls)."""
    from lntune.model.load import LNTUNE_HEAD_HOOK

    # Hooks would be skipped by the fused path; lntune's own (a contiguous input, lntune.model.load) is not needed.
    pre_hooks = [key for key in head._forward_pre_hooks if key != getattr(head, LNTUNE_HEAD_HOOK, None)]
    plain = type(head) is not nn.Linear or head.bias is not None or head._forward_hooks or pre_hooks
    # A trained head's weight gradient (vocabulary x hidden, fp32) is held from the forward pass to the backward
    # one; it must cost less than the logits it replaces (rows x vocabulary, ~10 bytes each counting their
    # log-softmax and gradient): true for small LLMs (SmolLM2: 576 wide), not for 7B ones with few supervised rows.
    if plain or (head.weight.requires_grad and torch.is_grad_enabled() and 4 * head.weight.shape[1] > 10 * hidden.shape[0]):
        return F.cross_entropy(head(hidden).float(), targets, reduction="sum")
    device = hidden.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
    chunk = max(16, _CHUNK_ELEMENTS // head.weight.shape[0])
    return _HeadCrossEntropy.apply(hidden, head.weight, targets, chunk, dtype, torch.is_grad_enabled())


class _HeadCrossEntropy(torch.autograd.Function):
    """Forward: the summed loss, and (when grad is on) the gradients of hidden and weight for a loss
    gradient of 1. Backward: those, times the incoming gradient (1 / divisor, or a loss scale)."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk, dtype, track):
        need_hidden = track and ctx.needs_input_grad[0]
        need_weight = track and ctx.needs_input_grad[1]
        w = weight.to(dtype)
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_weight else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        with torch.autocast(hidden.device.type, enabled=False):
            for start in range(0, hidden.shape[0], chunk):
                h, t = hidden[start:start + chunk].to(dtype), targets[start:start + chunk]
                logits = (h @ w.t()).float()
                lse = torch.logsumexp(logits, dim=-1)
                total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
                if need_hidden or need_weight:
                    probs = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
                    probs[torch.arange(len(t), device=t.device), t] -= 1.0
                    g = probs.to(dtype)
                    if need_hidden:
                        grad_hidden[start:start + chunk] = g @ w
                    if need_weight and dtype == torch.float32:
                        grad_weight.addmm_(g.t(), h)
                    elif need_weight:  # bf16/fp16 matmul (as autograd under autocast), accumulated in fp32
                        grad_weight += g.t() @ h
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_total):
        grad_hidden, grad_weight = ctx.saved_tensors
        if grad_hidden is not None:
            grad_hidden = grad_hidden * grad_total.to(grad_hidden.dtype)
        if grad_weight is not None:
            grad_weight = (grad_weight * grad_total).to(ctx.weight_dtype)
        return grad_hidden, grad_weight, None, None, None, None


def supervised_tokens(labels: torch.Tensor) -> int:
    return int((labels[:, 1:] != -100).sum())
