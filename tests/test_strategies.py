"""Strategies: exact trainable counts per architecture (computed from the config), gradient flow, errors."""

import pytest
import torch
from PIL import Image

from lntune.accounting import count
from lntune.errors import LntuneError
from lntune.model import build_mllm
from lntune.strategies import STRATEGIES, LoraOptions, StrategySpec, apply_strategy, decoder_norm_modules, trainable_names
from tiny_models import TEXT_DIMS, VOCAB_SIZE, save_tiny_llm, save_tiny_vision

H, M, L = TEXT_DIMS["hidden_size"], TEXT_DIMS["intermediate_size"], TEXT_DIMS["num_hidden_layers"]
HD, KV = TEXT_DIMS["head_dim"], TEXT_DIMS["num_key_value_heads"]
Q_OUT, KV_OUT = TEXT_DIMS["num_attention_heads"] * HD, KV * HD
V = VOCAB_SIZE + 2  # + <image> + <pad>
VISION_H = 12
PROJ = VISION_H * H + H  # linear projector with bias


def expected_counts(arch, tie=False, lora_r=4):
    """Trainable counts written out from the architecture's definition, independently of lntune's code."""
    qkv_bias = arch == "qwen2"
    q = H * Q_OUT + (Q_OUT if qkv_bias else 0)
    k = H * KV_OUT + (KV_OUT if qkv_bias else 0)
    v = H * KV_OUT + (KV_OUT if qkv_bias else 0)
    o = Q_OUT * H
    mlp = 3 * H * M
    norms = {"llama": 2 * H, "mistral": 2 * H, "qwen2": 2 * H, "qwen3": 2 * H + 2 * HD, "gemma2": 4 * H}[arch]
    embed = V * H
    head = 0 if tie else V * H
    base = PROJ + embed + head
    lora = L * lora_r * ((H + Q_OUT) + 2 * (H + KV_OUT) + (Q_OUT + H) + 2 * (H + M) + (M + H))
    return {
        "finetune": L * (q + k + v + o + mlp + norms) + embed + head + H + PROJ,  # + final norm
        "lora": lora + base,
        "attn-qv": L * (q + v) + base,
        "attn-mlp": L * mlp + base,
        "layernorm": L * norms + base,
        "layernorm-simple": L * norms,
        "connector": PROJ,
    }


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("strategies")
    out = {"clip": save_tiny_vision(root / "clip")}
    for arch in ("llama", "qwen2", "qwen3", "gemma2", "mistral"):
        out[arch] = save_tiny_llm(root / arch, arch=arch)
    out["llama-tied"] = save_tiny_llm(root / "llama-tied", tie=True)
    return out


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3", "gemma2", "mistral", "llama-tied"])
def test_exact_trainable_counts(dirs, arch):
    tie = arch.endswith("-tied")
    expected = expected_counts(arch.replace("-tied", ""), tie=tie)
    for name in STRATEGIES:
        model, _ = build_mllm(dirs[arch], dirs["clip"])
        names = apply_strategy(model, StrategySpec(name, lora=LoraOptions(r=4)))
        trainable, _ = count(model, names)
        assert trainable == expected[name], name
        # the requires_grad mask is exactly the counted set
        assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected[name], name


def test_gemma_style_blocks_have_four_norms(dirs):
    model, _ = build_mllm(dirs["gemma2"], dirs["clip"])
    block0 = sorted(n.split(".")[-1] for n in decoder_norm_modules(model) if ".layers.0." in n)
    assert block0 == ["input_layernorm", "post_attention_layernorm", "post_feedforward_layernorm", "pre_feedforward_layernorm"]


def test_final_norm_is_excluded_by_default_and_includable(dirs):
    model, _ = build_mllm(dirs["llama"], dirs["clip"])
    without = trainable_names(model, StrategySpec("layernorm-simple"))
    with_final = trainable_names(model, StrategySpec("layernorm-simple", include_final_norm=True))
    assert with_final - without == {"model.language_model.norm.weight"}


def test_table4_switches(dirs):
    model, _ = build_mllm(dirs["llama"], dirs["clip"])
    no_connector = trainable_names(model, StrategySpec("layernorm", include_base=False))
    assert no_connector == trainable_names(model, StrategySpec("layernorm-simple"))
    connector = trainable_names(model, StrategySpec("connector"))
    assert connector == {"model.multi_modal_projector.linear_1.weight", "model.multi_modal_projector.linear_1.bias"}


def test_vision_tower_and_lora_placement(dirs):
    model, _ = build_mllm(dirs["llama"], dirs["clip"])
    names = apply_strategy(model, StrategySpec("lora", lora=LoraOptions(r=4)))
    lora = [n for n in names if "lora_" in n]
    assert lora and all(".language_model.layers." in n for n in lora)
    assert not any("vision_tower" in n and p.requires_grad for n, p in model.named_parameters())
    assert not any("lora_" in n for n, _ in model.named_parameters() if "vision_tower" in n or "projector" in n)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_forward_backward_touches_exactly_the_strategy(dirs, name):
    model, processor = build_mllm(dirs["llama"], dirs["clip"])
    names = apply_strategy(model, StrategySpec(name, lora=LoraOptions(r=4, dropout=0.0)))
    inputs = processor(text="<image>\nwhat color is the ball red", images=Image.new("RGB", (32, 32)), return_tensors="pt")
    model(**inputs, labels=inputs["input_ids"]).loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad == {n for n, p in model.named_parameters() if n in names or p.requires_grad}
    assert with_grad and all("vision_tower" not in n for n in with_grad)


def test_half_precision_models_keep_fp32_master_weights(dirs):
    model, _ = build_mllm(dirs["llama"], dirs["clip"], dtype=torch.bfloat16)
    names = apply_strategy(model, StrategySpec("layernorm"))
    params = dict(model.named_parameters())
    assert all(params[n].dtype == torch.float32 for n in names if n in params)
    assert params["model.language_model.layers.0.self_attn.q_proj.weight"].dtype == torch.bfloat16


def test_unknown_strategy_lists_the_valid_ones():
    with pytest.raises(LntuneError, match="unknown strategy 'bitfit'; valid strategies: finetune, lora, attn-qv"):
        StrategySpec("bitfit")
