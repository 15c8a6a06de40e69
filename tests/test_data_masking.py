"""Label masking: only assistant text and its turn-end marker are supervised, for each chat template."""

import pytest
from test_data_support import tiny_processor, tiny_tokenizer

from lntune.data.conversation import IGNORE_INDEX, encode_conversation, render, render_prompt
from lntune.data.templates import TEMPLATES, ensure_chat_template
from lntune.errors import LntuneError

MESSAGES = [
    {"role": "user", "content": "<image>\nWhat is in the image?"},
    {"role": "assistant", "content": "A red square above a blue circle."},
    {"role": "user", "content": "How many shapes are there?"},
    {"role": "assistant", "content": "There are two shapes."},
]
END = {"chatml": "<|im_end|>", "vicuna_v1": "</s>", "llama2_chat": "</s>"}


def _runs(labels):
    """(start, end) of each run of supervised positions."""
    runs, start = [], None
    for j, label in enumerate(labels + [IGNORE_INDEX]):
        if label != IGNORE_INDEX and start is None:
            start = j
        elif label == IGNORE_INDEX and start is not None:
            runs.append((start, j))
            start = None
    return runs


@pytest.mark.parametrize("kind", ["bytelevel", "metaspace"])
@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_supervised_text_is_the_assistant_turns(name, kind):
    tok = tiny_tokenizer(kind)
    ensure_chat_template(tok, name)
    enc = encode_conversation(tok, MESSAGES)
    assert len(enc.input_ids) == len(enc.labels)
    assert all(label in (IGNORE_INDEX, tid) for label, tid in zip(enc.labels, enc.input_ids))
    runs = _runs(enc.labels)
    assert len(runs) == 2
    end_id = tok.convert_tokens_to_ids(END[name])
    for (a, b), answer in zip(runs, ["A red square above a blue circle.", "There are two shapes."]):
        assert enc.input_ids[b - 1] == end_id
        assert tok.decode(enc.input_ids[a : b - 1]).strip() == answer
    # Nothing of the user turns or the template's own text is supervised.
    unsupervised = tok.decode([t for t, label in zip(enc.input_ids, enc.labels) if label == IGNORE_INDEX])
    assert "What is in the image?" in unsupervised and "How many shapes" in unsupervised
    assert "square" not in unsupervised and "two shapes" not in unsupervised


def test_chatml_exact_label_positions():
    """Positions from tokenizing the render prefixes separately (ChatML splits at special tokens and newlines)."""
    tok = tiny_tokenizer()
    ensure_chat_template(tok, "chatml")
    enc = encode_conversation(tok, MESSAGES)

    def n_tokens(text):
        return len(tok(text, add_special_tokens=False)["input_ids"])

    expected = []
    for k in (1, 3):
        start = n_tokens(render(tok, MESSAGES[:k], add_generation_prompt=True))
        end = n_tokens(render(tok, MESSAGES[: k + 1]).rstrip("\n"))
        expected.append((start, end))
    assert _runs(enc.labels) == expected
    assert expected[0][0] == 22 and expected[1][1] == len(enc.input_ids) - 1  # only the final "\n" after <|im_end|>
    supervised = [t for t, label in zip(enc.input_ids, enc.labels) if label != IGNORE_INDEX]
    assert tok.decode(supervised) == "A red square above a blue circle.<|im_end|>There are two shapes.<|im_end|>"


def test_vicuna_and_llama2_decoded_supervised_text():
    for name, expected in [
        ("vicuna_v1", " A red square above a blue circle.</s> There are two shapes.</s>"),
        ("llama2_chat", " A red square above a blue circle. </s> There are two shapes. </s>"),
    ]:
        tok = tiny_tokenizer()
        ensure_chat_template(tok, name)
        enc = encode_conversation(tok, MESSAGES)
        assert tok.decode([t for t, label in zip(enc.input_ids, enc.labels) if label != IGNORE_INDEX]) == expected


def test_template_that_rewrites_the_answer_is_an_error():
    tok = tiny_tokenizer()
    tok.chat_template = TEMPLATES["chatml"].replace("m['content']", "(m['content'] | upper)")
    with pytest.raises(LntuneError, match="assistant turn 1 does not appear"):
        encode_conversation(tok, MESSAGES)


def test_template_that_is_not_prefix_stable_is_an_error():
    tok = tiny_tokenizer()
    tok.chat_template = "{{ messages | length }}" + TEMPLATES["chatml"]
    with pytest.raises(LntuneError, match="continuation"):
        encode_conversation(tok, MESSAGES)


def test_token_straddling_prompt_and_answer_is_an_error():
    """A token that covers prompt and answer text would train on the prompt: refused."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "</s>": 1, "Q": 2, "A:yes": 3, "yes": 4}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", eos_token="</s>")
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'user' %}{{ m['content'] }} {% else %}A:{{ m['content'] }} "
        "</s> {% endif %}{% endfor %}{% if add_generation_prompt %}A:{% endif %}"
    )
    with pytest.raises(LntuneError, match="decode to 'A:yes', not 'yes'"):
        encode_conversation(tok, [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "yes"}])


def test_render_prompt_with_and_without_history():
    processor = tiny_processor("chatml")
    assert render_prompt(processor, "What color?") == (
        "<|im_start|>user\n<image>\nWhat color?<|im_end|>\n<|im_start|>assistant\n"
    )
    shots = [("Describe a picture.", "A red square."), ("Describe a picture.", "Two circles.")]
    assert render_prompt(processor, "Describe the picture.", history=shots) == (
        "<|im_start|>user\nDescribe a picture.<|im_end|>\n<|im_start|>assistant\nA red square.<|im_end|>\n"
        "<|im_start|>user\nDescribe a picture.<|im_end|>\n<|im_start|>assistant\nTwo circles.<|im_end|>\n"
        "<|im_start|>user\n<image>\nDescribe the picture.<|im_end|>\n<|im_start|>assistant\n"
    )
    vicuna = tiny_processor("vicuna_v1")
    system = [{"role": "system", "content": "Answer briefly."}]
    assert render_prompt(vicuna, "Is there a dog?", history=system) == (
        "<s>Answer briefly. USER: <image>\nIs there a dog? ASSISTANT:"
    )
