"""LoRA's A matrices with their input dropout in one autograd step that keeps each adapted input once.

peft computes `lora_B(lora_A(dropout(x)))`. On a CPU, `dropout` keeps a float noise tensor for its backward
and `lora_A` keeps the dropped copy of `x` for its weight gradient: 8 bytes per input element, for every
adapted module, although q/k/v (and gate/up) read the same `x`. With a bf16 model and fp32 adapters peft
also casts `x` to fp32 once per module. `lean_lora_inputs(model)` replaces each adapter's dropout + A by
`LoraInput`, whose backward rebuilds the dropped input from `x` (kept once, shared by the modules that read
it, in its own dtype) and a one-byte kept-mask. The mask is drawn exactly as `torch.nn.functional.dropout`
draws it on a CPU (the same random numbers, the same values), so training results do not change.

    from lntune.lora_dropout import lean_lora_inputs
    lean_lora_inputs(model)          # after peft's injection (lntune.strategies.inject_lora calls it)

Parameter names and state dicts stay peft's (`...lora_A.default.weight`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LoraInput(nn.Linear):
    """peft's `lora_A` linear with the adapter's dropout probability `p` folded in (set by `lean_lora_inputs`)."""

    p: float = 0.0

    def forward(self, x):
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else self.weight.dtype
        if not (self.training and torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)):
            return F.linear(F.dropout(x, self.p, self.training).to(dtype), self.weight.to(dtype))
        return _DroppedLinear.apply(x, self.weight, self.p if self.training else 0.0, dtype)


class _DroppedLinear(torch.autograd.Function):
    """dropout(x, p) @ weight.T in `dtype`; saves x, the weight and a bool kept-mask (None when p = 0)."""

    @staticmethod
    def forward(ctx, x, weight, p, dtype):
        keep = None
        dropped = x
        if p > 0:  # in fp32 at least, as peft's dropout runs on its fp32 cast of a 16-bit x
            noise = torch.empty(x.shape, dtype=_at_least_fp32(x.dtype), device=x.device).bernoulli_(1 - p)
            keep = noise.bool()  # F.dropout's own draw on a CPU
            dropped = x * noise.div_(1 - p)
        out = F.linear(dropped.to(dtype), weight.to(dtype))
        ctx.save_for_backward(x, weight, keep)
        ctx.p, ctx.dtype = p, dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, keep = ctx.saved_tensors
        dtype, p = ctx.dtype, ctx.p
        scale = None if keep is None else keep.to(_at_least_fp32(x.dtype)).div_(1 - p)
        grad_out = grad_out.to(dtype)
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_x = grad_out @ weight.to(dtype)
            grad_x = (grad_x if scale is None else grad_x * scale).to(x.dtype)
        if ctx.needs_input_grad[1]:
            dropped = x if scale is None else x * scale
            flat = dropped.reshape(-1, dropped.shape[-1]).to(dtype)
            grad_weight = (grad_out.reshape(-1, grad_out.shape[-1]).t() @ flat).to(weight.dtype)
        return grad_x, grad_weight, None, None


def _at_least_fp32(dtype):
    return torch.promote_types(dtype, torch.float32)


def lean_lora_inputs(model) -> int:
    """Swap every peft LoRA layer's A linears for `LoraInput` (its dropout folded in, peft's input cast off).
    Returns how many adapters changed."""
    changed = 0
    for module in model.modules():
        dropouts, inputs = getattr(module, "lora_dropout", None), getattr(module, "lora_A", None)
        if not isinstance(dropouts, nn.ModuleDict) or not isinstance(inputs, nn.ModuleDict):
            continue
        for name, linear in inputs.items():
            if type(linear) not in (nn.Linear, LoraInput):
                continue  # a layer kind peft adapts differently (embedding, convolution): left as peft made it
            dropout = dropouts[name]
            linear.__class__ = LoraInput
            linear.p = dropout.p if isinstance(dropout, nn.Dropout) else 0.0
            dropouts[name] = nn.Identity()
            changed += 1
        module.cast_input_dtype_enabled = False  # LoraInput casts inside, after keeping x in its own dtype
    return changed
