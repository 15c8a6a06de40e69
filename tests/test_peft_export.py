"""`lntune export --format peft`: the adapter loads with `PeftModel.from_pretrained` on the base exported
in HF format, and its logits equal the full export's (fp32, max abs difference <= 1e-5)."""

import json

import pytest
import torch
from PIL import Image

from lntune.cli import main
from lntune.config import load_config
from lntune.errors import LntuneError
from lntune.train.loop import train
from tiny_models import COLORS, make_tiny_run_inputs, save_tiny_llm


def _stage1(inputs, out):
    data = json.loads(json.dumps(inputs))
    data["output_dir"] = str(out)
    data["train"].update(strategy="connector", max_steps=2)
    return inputs, train(load_config(data=data))


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    root = tmp_path_factory.mktemp("peft")
    return _stage1(make_tiny_run_inputs(root, samples=8), root / "stage1")


def _stage2(stage1, tmp_path, **train_options):
    inputs, base = stage1
    data = json.loads(json.dumps(inputs))
    data.update(output_dir=str(tmp_path / "stage2"))
    data["model"]["base"] = str(base)
    data["train"].update({"max_steps": 3, "lr": 5e-2, **train_options})
    return train(load_config(data=data))


@pytest.mark.parametrize("options", [{"strategy": "layernorm"},
                                     {"strategy": "lora", "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
                                     {"strategy": "layernorm", "tied": True}],
                         ids=["layernorm", "lora", "layernorm-tied-embeddings"])
def test_peft_adapter_on_the_exported_base_equals_the_full_export(stage1, tmp_path, options):
    from peft import PeftModel
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    options = dict(options)
    if options.pop("tied", False):  # embeddings and head share one tensor (SmolLM2's case): saved once, applied to both
        inputs = json.loads(json.dumps(stage1[0]))
        inputs["model"]["llm"] = str(save_tiny_llm(tmp_path / "tied-llm", tie=True))
        stage1 = _stage1(inputs, tmp_path / "stage1")
    run = _stage2(stage1, tmp_path, **options)
    assert main(["export", "--model", str(stage1[1]), "--out", str(tmp_path / "base_hf")]) == 0
    assert main(["export", "--model", str(run), "--out", str(tmp_path / "full")]) == 0
    assert main(["export", "--model", str(run), "--format", "peft", "--out", str(tmp_path / "adapter")]) == 0
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    expected_type = "LORA" if options["strategy"] == "lora" else "LN_TUNING"
    assert config["peft_type"] == expected_type
    assert sorted(config["modules_to_save"]) == ["embed_tokens", "lm_head", "multi_modal_projector"]

    processor = AutoProcessor.from_pretrained(tmp_path / "full")
    batch = processor(text="<image>\nwhat color is the ball", images=Image.new("RGB", (32, 32), COLORS["red"]),
                      return_tensors="pt")
    full = LlavaForConditionalGeneration.from_pretrained(tmp_path / "full")
    base = LlavaForConditionalGeneration.from_pretrained(tmp_path / "base_hf")
    with torch.no_grad():
        base_logits = base(**batch).logits
        adapted = PeftModel.from_pretrained(base, tmp_path / "adapter")
        difference = (adapted(**batch).logits - full(**batch).logits).abs().max().item()
    assert difference <= 1e-5
    assert (base_logits - full(**batch).logits).abs().max().item() > 1e-3  # the adapter is what made them equal


def test_strategies_without_an_adapter_form_are_refused(stage1, tmp_path, capsys):
    run = _stage2(stage1, tmp_path, strategy="attn-qv", max_steps=1)
    assert main(["export", "--model", str(run), "--format", "peft", "--out", str(tmp_path / "adapter")]) == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("lntune: error: --format peft: the attn-qv run trained") and "export it in full" in last
    with pytest.raises(LntuneError, match="built from a recipe.*--base-out"):
        from lntune.model.peft_export import export_peft

        export_peft(stage1[1], tmp_path / "x")
