"""LoRA's A step with its dropout folded in (lntune/lora_dropout.py): peft's values, less kept memory."""

import copy

import pytest
import torch
from peft import LoraConfig, inject_adapter_in_model
from torch import nn

from lntune.lora_dropout import LoraInput, lean_lora_inputs


class Attention(nn.Module):
    """q, k and v read the same input, as in a decoder block."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(16, 16), nn.Linear(16, 8), nn.Linear(16, 8)

    def forward(self, x):
        return self.q(x).sum() + self.k(x).pow(2).sum() + (self.v(x) * 3).sum()


def _pair(dropout: float):
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, target_modules=["q", "k", "v"], init_lora_weights=False)
    peft_model = inject_adapter_in_model(config, Attention())
    lean = copy.deepcopy(peft_model)
    assert lean_lora_inputs(lean) == 3
    return peft_model, lean


def _run(model, x, seed=1):
    torch.manual_seed(seed)
    x = x.detach().requires_grad_(True)
    out = model(x)
    out.backward()
    params = model.named_parameters() if isinstance(model, nn.Module) else ()
    return out.detach(), x.grad, {n: p.grad for n, p in params if p.grad is not None}


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_same_values_and_gradients_as_peft_bit_for_bit(dropout):
    peft_model, lean = _pair(dropout)
    x = torch.randn(3, 5, 16)
    (out_a, gx_a, g_a), (out_b, gx_b, g_b) = _run(peft_model, x), _run(lean, x)
    assert torch.equal(out_a, out_b) and torch.equal(gx_a, gx_b)
    assert g_a.keys() == g_b.keys() and all(torch.equal(g_a[k], g_b[k]) for k in g_a)
    assert peft_model.state_dict().keys() == lean.state_dict().keys()
    peft_model.eval(), lean.eval()
    assert torch.equal(peft_model(x), lean(x))
    assert all(type(m.lora_A["default"]) is LoraInput for m in (lean.q, lean.k, lean.v))


def _saved_bytes(model, x) -> int:
    """Bytes of the distinct storages autograd keeps for the backward pass, parameters excluded."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(kept.values())


def test_the_shared_input_is_kept_once_with_a_byte_mask_per_module():
    peft_model, lean = _pair(0.1)
    n = 3 * 5 * 16
    x = torch.randn(3, 5, 16, requires_grad=True)
    # the rest of the graph keeps k's output (pow) and A's outputs (lora_B's inputs): the same in both
    rest = 4 * 3 * 5 * 8 + 3 * 4 * 3 * 5 * 4
    # peft: per module, dropout's float noise and the dropped copy (A's input)
    assert _saved_bytes(peft_model, x) == rest + 3 * (4 * n + 4 * n)
    # lean: x once (shared by q, k and v; it is the caller's tensor) and a one-byte kept-mask per module
    assert _saved_bytes(lean, x) == rest + 4 * n + 3 * n


def test_bf16_model_under_autocast_matches_peft_and_keeps_x_in_bf16():
    peft_model, lean = _pair(0.1)
    for model in (peft_model, lean):  # a bf16 model with fp32 adapters, as apply_strategy leaves it
        for name, param in model.named_parameters():
            param.data = param.data.float() if "lora_" in name else param.data.to(torch.bfloat16)
            param.requires_grad_("lora_" in name)
    x = torch.randn(3, 5, 16, dtype=torch.bfloat16)
    with torch.autocast("cpu", torch.bfloat16):
        (out_a, gx_a, g_a), (out_b, gx_b, g_b) = _run(peft_model, x), _run(lean, x)
        n = 3 * 5 * 16
        x.requires_grad_(True)
        peft_kept, lean_kept = _saved_bytes(peft_model, x), _saved_bytes(lean, x)
    assert torch.equal(out_a, out_b) and torch.equal(gx_a, gx_b)
    assert all(torch.equal(g_a[k], g_b[k]) for k in g_a)
    # peft, per module: fp32 dropout noise, the bf16 cast of the dropped fp32 copy and of A (4 x 16);
    # lean: bf16 x once and 3 masks (A is kept as the parameter itself)
    assert peft_kept - lean_kept == 3 * (4 * n + 2 * n + 2 * 4 * 16) - (2 * n + 3 * n)


def test_gradient_checkpointing_redraws_the_same_masks():
    from torch.utils.checkpoint import checkpoint

    _, lean = _pair(0.1)
    x = torch.randn(3, 5, 16)
    plain = _run(lean, x, seed=2)
    lean.zero_grad(set_to_none=True)
    checkpointed = _run(lambda t: checkpoint(lean, t, use_reentrant=False), x, seed=2)
    assert torch.equal(plain[0], checkpointed[0]) and torch.equal(plain[1], checkpointed[1])
