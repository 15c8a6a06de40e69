"""Model assembly from tiny HF checkpoints: image-token counts, projectors, save/load round trips."""

import pytest
import torch
from PIL import Image

from lntune.errors import LntuneError
from lntune.model import build_mllm, load_mllm, num_image_tokens, save_mllm
from tiny_models import VOCAB_SIZE, save_tiny_llm, save_tiny_vision


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("parts")
    return {
        "llama": save_tiny_llm(root / "llama"),
        "llama-tied": save_tiny_llm(root / "llama-tied", tie=True),
        "clip": save_tiny_vision(root / "clip", "clip"),
        "siglip": save_tiny_vision(root / "siglip", "siglip"),
    }


def _inputs(processor, question="what color is the ball"):
    image = Image.new("RGB", (40, 30), (200, 20, 20))
    return processor(text=f"<image>\n{question}", images=image, return_tensors="pt")


@pytest.mark.parametrize("vision,expected", [("clip", 16), ("siglip", 16)])
def test_image_token_count_matches_the_vision_features(parts, vision, expected):
    # 32 px / patch 8 = 4x4 patches; CLIP's CLS is dropped ("default"), SigLIP has none ("full").
    model, processor = build_mllm(parts["llama"], parts[vision])
    assert num_image_tokens(processor) == expected
    inputs = _inputs(processor)
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) == expected
    out = model(**inputs)  # raises if tokens and features disagree
    assert out.logits.shape[1] == inputs["input_ids"].shape[1]


def test_tokenizer_gets_image_and_pad_tokens_and_embeddings_resize(parts):
    model, processor = build_mllm(parts["llama"], parts["clip"])
    tok = processor.tokenizer
    assert len(tok) == VOCAB_SIZE + 2
    assert tok.pad_token == "<pad>" and tok.pad_token_id != tok.eos_token_id
    assert model.get_input_embeddings().weight.shape[0] == VOCAB_SIZE + 2
    assert model.lm_head.weight.shape[0] == VOCAB_SIZE + 2
    assert model.config.image_token_id == tok.convert_tokens_to_ids("<image>")
    assert tok.chat_template  # the tiny tokenizer had none: lntune gives it one
    assert model.config.vision_feature_layer == -2


def test_tied_embeddings_stay_tied(parts):
    model, _ = build_mllm(parts["llama-tied"], parts["clip"])
    assert model.lm_head.weight is model.get_input_embeddings().weight


@pytest.mark.parametrize("projector", ["linear", "mlp2x_gelu"])
def test_save_load_round_trip_is_exact(parts, tmp_path, projector):
    model, processor = build_mllm(parts["llama"], parts["clip"], projector=projector)
    names = {n for n, _ in model.named_parameters()}
    assert ("model.multi_modal_projector.linear_2.weight" in names) == (projector == "mlp2x_gelu")
    save_mllm(model, processor, tmp_path / "saved")
    loaded, loaded_processor = load_mllm(tmp_path / "saved")
    original, again = model.state_dict(), loaded.state_dict()
    assert original.keys() == again.keys()
    for key in original:
        assert torch.equal(original[key], again[key]), key
    inputs = _inputs(processor)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, loaded(**inputs).logits)
    assert loaded_processor.tokenizer.chat_template == processor.tokenizer.chat_template


def test_mlp2x_model_loads_with_plain_transformers(parts, tmp_path):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model, processor = build_mllm(parts["llama"], parts["clip"], projector="mlp2x_gelu")
    save_mllm(model, processor, tmp_path / "hf")
    plain = LlavaForConditionalGeneration.from_pretrained(tmp_path / "hf")
    plain_processor = AutoProcessor.from_pretrained(tmp_path / "hf")
    inputs = _inputs(plain_processor)
    with torch.no_grad():
        assert torch.equal(model(**inputs).logits, plain(**inputs).logits)


def test_vision_feature_layer_is_configurable(parts):
    model, _ = build_mllm(parts["llama"], parts["clip"], vision_feature_layer=-1)
    assert model.config.vision_feature_layer == -1


def test_projector_init_scale_multiplies_the_fresh_projector(parts):
    plain, _ = build_mllm(parts["llama"], parts["clip"], seed=3)
    small, _ = build_mllm(parts["llama"], parts["clip"], seed=3, projector_init_scale=0.1)
    a, b = plain.model.multi_modal_projector.linear_1, small.model.multi_modal_projector.linear_1
    assert torch.equal(b.weight, a.weight * 0.1) and torch.equal(b.bias, a.bias * 0.1)


def test_bad_inputs_raise_clear_errors(parts, tmp_path):
    with pytest.raises(LntuneError, match="unknown projector 'conv'"):
        build_mllm(parts["llama"], parts["clip"], projector="conv")
    with pytest.raises(LntuneError, match="no config.json"):
        build_mllm(tmp_path, parts["clip"])
    with pytest.raises(LntuneError, match="unsupported vision encoder type 'llama'"):
        build_mllm(parts["llama"], parts["llama"])
    with pytest.raises(LntuneError, match="neither an lntune run"):
        load_mllm(tmp_path)
