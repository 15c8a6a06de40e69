"""An exported run used the way a llava-hf model card shows, with plain transformers only: messages in
Hugging Face's multimodal format, `apply_chat_template`, `processor(images=..., text=...)`, `generate`.
The greedy answer equals `lntune chat`'s, token for token, for every chat template lntune ships."""

import json

import pytest
import torch
from PIL import Image

from lntune.cli import main
from lntune.config import load_config
from lntune.data.templates import TEMPLATES
from lntune.eval.generate import render_prompt
from lntune.model.export import export_hf
from lntune.model.load import load_mllm
from lntune.train.loop import train
from tiny_models import COLORS, make_tiny_run_inputs

QUESTION = "what color is the ball"
NEW_TOKENS = 6


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_tiny_run_inputs(tmp_path_factory.mktemp("hfchat"), samples=8)


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_hf_multimodal_messages_generate_what_lntune_chat_answers(inputs, tmp_path, capsys, template):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    data = json.loads(json.dumps(inputs))
    data["output_dir"] = str(tmp_path / "run")
    data["model"]["chat_template"] = template
    data["train"].update(max_steps=1)
    run = train(load_config(data=data))
    export_hf(run, tmp_path / "hf")
    image_path = tmp_path / "ball.png"
    Image.new("RGB", (32, 32), COLORS["green"]).save(image_path)
    capsys.readouterr()
    assert main(["chat", "--model", str(run), "--image", str(image_path), "--max-new-tokens", str(NEW_TOKENS),
                 QUESTION]) == 0
    lntune_answer = capsys.readouterr().out.rstrip("\n")

    processor = AutoProcessor.from_pretrained(tmp_path / "hf")
    model = LlavaForConditionalGeneration.from_pretrained(tmp_path / "hf")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert prompt.count("<image>") == 1
    inputs_hf = processor(images=Image.open(image_path).convert("RGB"), text=prompt, return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(**inputs_hf, max_new_tokens=NEW_TOKENS, do_sample=False)
    new = output[0, inputs_hf["input_ids"].shape[1]:].tolist()
    stops = set(model.generation_config.eos_token_id)
    new = new[: next((i for i, t in enumerate(new) if t in stops), len(new))]
    assert new, "the greedy answer is empty: nothing was compared"
    assert processor.tokenizer.decode(new, skip_special_tokens=True).strip() == lntune_answer

    # the same prompt as lntune renders from its own string form, and the same tokens from lntune's generator
    lntune_model, lntune_processor = load_mllm(run)
    assert prompt == render_prompt(lntune_processor, [{"role": "user", "content": "<image>\n" + QUESTION}])
    from lntune.eval.generate import generate_tokens

    assert generate_tokens(lntune_model, lntune_processor, [prompt], [Image.open(image_path).convert("RGB")],
                           max_new_tokens=NEW_TOKENS) == [new]


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_list_of_parts_renders_like_a_string(template):
    from tiny_models import tiny_tokenizer

    from lntune.data.templates import ensure_chat_template

    tokenizer = tiny_tokenizer()
    ensure_chat_template(tokenizer, template)
    as_strings = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "<image>\nwhat color"},
                  {"role": "assistant", "content": "red"}, {"role": "user", "content": "is it a ball"}]
    as_parts = [{"role": "system", "content": [{"type": "text", "text": "be brief"}]},
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what color"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "red"}]},
                {"role": "user", "content": [{"type": "text", "text": "is it a ball"}]}]
    render = lambda m: tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
    assert render(as_parts) == render(as_strings)
    assert render(as_parts).count("<image>\nwhat color") == 1
    with pytest.raises(Exception, match="unsupported content part type: video"):
        render([{"role": "user", "content": [{"type": "video"}]}])
