"""Fused RMSNorm (lntune/train/fused_norms.py) and the fused AdamW (lntune/train/optim.py) change speed, not results."""

import pytest
import torch

from lntune.train.fused_norms import fuse_rms_norms
from lntune.train.optim import make_optimizer
from tiny_models import text_config


def _tiny(arch):
    import transformers

    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(text_config(arch))


def _loss_and_grads(model, ids):
    model.zero_grad(set_to_none=True)
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_fused_norms_same_loss_and_gradients(arch):
    model = _tiny(arch)
    ids = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(1))
    loss, grads = _loss_and_grads(model, ids)
    keys = list(model.state_dict())
    layers = model.config.num_hidden_layers
    assert fuse_rms_norms(model) == 2 * layers + 1  # input + post-attention norm per block, the final norm
    fused_loss, fused_grads = _loss_and_grads(model, ids)
    assert list(model.state_dict()) == keys
    torch.testing.assert_close(fused_loss, loss, rtol=1e-6, atol=1e-7)
    for name, grad in grads.items():
        torch.testing.assert_close(fused_grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_norms_with_another_formula_keep_their_forward():
    model = _tiny("gemma2")  # Gemma's RMSNorm scales by (1 + weight): not Llama's formula
    assert fuse_rms_norms(model) == 0


def test_fused_norm_falls_back_when_input_dtype_differs():
    model = _tiny("llama")
    norm = model.model.norm
    x = torch.randn(3, model.config.hidden_size, dtype=torch.bfloat16)
    expected = norm(x)
    fuse_rms_norms(model)
    assert "forward" in vars(norm)
    assert torch.equal(norm(x), expected)  # bf16 input, fp32 weight: HF's own forward runs


def test_optimizer_is_fused_adamw_with_the_run_settings():
    from lntune.config import TrainConfig

    params = [torch.nn.Parameter(torch.ones(4)), torch.nn.Parameter(torch.ones(2, 2))]
    optimizer = make_optimizer([(f"p{i}", p) for i, p in enumerate(params)], TrainConfig(lr=0.25, weight_decay=0.5))
    group = optimizer.param_groups[0]
    assert isinstance(optimizer, torch.optim.AdamW) and group["fused"] is True
    assert (group["lr"], group["weight_decay"]) == (0.25, 0.5)
    reference = torch.optim.AdamW([torch.nn.Parameter(torch.ones(4))], lr=0.25, weight_decay=0.5)
    for p in params + reference.param_groups[0]["params"]:
        p.grad = torch.full_like(p, 0.5)
    optimizer.step()
    reference.step()
    torch.testing.assert_close(params[0], reference.param_groups[0]["params"][0])


def test_projector_lr_puts_the_connector_in_its_own_group():
    from lntune.config import TrainConfig

    norm, connector = torch.nn.Parameter(torch.ones(4)), torch.nn.Parameter(torch.ones(2, 2))
    named = [("model.language_model.layers.0.input_layernorm.weight", norm),
             ("model.multi_modal_projector.linear_1.weight", connector)]
    groups = make_optimizer(named, TrainConfig(lr=0.25, projector_lr=0.05)).param_groups
    assert [(g["params"], g["lr"]) for g in groups] == [([norm], 0.25), ([connector], 0.05)]
    only = make_optimizer(named[1:], TrainConfig(lr=0.25, projector_lr=0.05)).param_groups  # the connector strategy
    assert [(g["params"], g["lr"]) for g in only] == [([connector], 0.05)]
