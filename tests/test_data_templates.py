"""The named chat templates render the documented formats; ensure_chat_template keeps or sets them."""

import pytest
from test_data_support import tiny_tokenizer

from lntune.data.templates import TEMPLATES, VICUNA_SYSTEM, default_template_name, ensure_chat_template
from lntune.errors import LntuneError

CHAT = [
    {"role": "user", "content": "<image>\nWhat is it?"},
    {"role": "assistant", "content": "A square."},
    {"role": "user", "content": "Color?"},
    {"role": "assistant", "content": "Red."},
]


def _render(name, messages, generation=False):
    tok = tiny_tokenizer()
    ensure_chat_template(tok, name)
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)


def test_chatml_exact():
    assert _render("chatml", CHAT) == (
        "<|im_start|>user\n<image>\nWhat is it?<|im_end|>\n<|im_start|>assistant\nA square.<|im_end|>\n"
        "<|im_start|>user\nColor?<|im_end|>\n<|im_start|>assistant\nRed.<|im_end|>\n"
    )
    assert _render("chatml", CHAT[:1], True) == "<|im_start|>user\n<image>\nWhat is it?<|im_end|>\n<|im_start|>assistant\n"


def test_vicuna_v1_exact():
    assert VICUNA_SYSTEM.startswith("A chat between a curious user and an artificial intelligence assistant.")
    assert _render("vicuna_v1", CHAT) == (
        f"<s>{VICUNA_SYSTEM} USER: <image>\nWhat is it? ASSISTANT: A square.</s>USER: Color? ASSISTANT: Red.</s>"
    )
    assert _render("vicuna_v1", CHAT[:1], True) == f"<s>{VICUNA_SYSTEM} USER: <image>\nWhat is it? ASSISTANT:"
    system = [{"role": "system", "content": "Be brief."}]
    assert _render("vicuna_v1", system + CHAT[:1], True) == "<s>Be brief. USER: <image>\nWhat is it? ASSISTANT:"


def test_llama2_chat_exact():
    assert _render("llama2_chat", CHAT) == (
        "<s>[INST] <image>\nWhat is it? [/INST] A square. </s><s>[INST] Color? [/INST] Red. </s>"
    )
    system = [{"role": "system", "content": "Be brief."}]
    assert _render("llama2_chat", system + CHAT[:1], True) == (
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n<image>\nWhat is it? [/INST]"
    )


@pytest.mark.parametrize("name", ["vicuna_v1", "llama2_chat"])
def test_roles_must_alternate(name):
    from jinja2 import TemplateError

    with pytest.raises(TemplateError, match="alternate"):
        _render(name, [CHAT[0], CHAT[2]])


def test_ensure_keeps_own_template_sets_named_and_defaults():
    tok = tiny_tokenizer()
    assert tok.chat_template is None
    assert default_template_name(tok) == "chatml"  # the tiny vocabulary has <|im_start|> / <|im_end|>
    assert ensure_chat_template(tok) == "chatml" and tok.chat_template == TEMPLATES["chatml"]
    tok.chat_template = "{{ 'own' }}"
    assert ensure_chat_template(tok) == "own" and tok.chat_template == "{{ 'own' }}"
    assert ensure_chat_template(tok, "llama2_chat") == "llama2_chat" and tok.chat_template == TEMPLATES["llama2_chat"]
    with pytest.raises(LntuneError, match="unknown template 'vicuna'"):
        ensure_chat_template(tok, "vicuna")


def test_default_is_vicuna_without_chatml_tokens():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0, "hi": 1}, unk_token="<unk>")))
    assert default_template_name(tok) == "vicuna_v1"
    assert ensure_chat_template(tok) == "vicuna_v1"


def test_ensure_on_processor_sets_its_tokenizer():
    from test_data_support import tiny_processor

    processor = tiny_processor("chatml")
    assert ensure_chat_template(processor, "vicuna_v1") == "vicuna_v1"
    assert processor.tokenizer.chat_template == TEMPLATES["vicuna_v1"]
