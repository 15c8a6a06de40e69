"""Early stop at a settled answer: the POPE and MME official parsers read the same answer from every
prefix judged settled as from the whole text, for hand-written continuations and for every prefix of
many random strings; the stopping criterion stops rows early and keeps a prefix of their tokens."""

import itertools
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_eval_helpers import color_image, tiny_llava  # noqa: E402

from lntune.eval.generate import generate_batch, generate_tokens, render_prompt  # noqa: E402
from lntune.eval.metrics.mme import mme_answer_settled, mme_result_line, parse_mme_answer  # noqa: E402
from lntune.eval.metrics.pope import parse_pope_answer, pope_answer_settled  # noqa: E402
from lntune.eval.settled import keeps_prefixes  # noqa: E402

CONTINUATIONS = ["No. Yes there is", "yes\nno", "Not sure.", "Yes, there is no dog.", "No, there is a dog.",
                 ". No", "A\nno", "1. no", "Yes\n\nIt is", "noyes", "xno", "None", "No,there", "n o", "Yes",
                 "No", "yes no", "Yes\nThere is no dog.", "The answer is no.", "I can not tell", "no\tyes",
                 "YES.", "nO", "yEs, no", "Is there? no"]


def mme_official(response: str, newline: bool = True) -> str:
    """The official parse of `response` as lntune writes it (the line's newline kept, as the script reads)."""
    field = mme_result_line("image.jpg", "question", "Yes", response).split("\t")[3]
    return parse_mme_answer(field if newline else field.rstrip("\n"))


RULES = [
    (pope_answer_settled, parse_pope_answer),
    (mme_answer_settled, mme_official),
    (mme_answer_settled, lambda text: mme_official(text, newline=False)),
]


def settled_prefixes_agree(text: str) -> None:
    """Every stripped prefix of `text` judged settled parses as `text` itself (stripped, as lntune stores it)."""
    full = text.strip()
    for end in range(len(text) + 1):
        prefix = text[:end].strip()
        for settled, parse in RULES:
            if settled(prefix):
                assert parse(prefix) == parse(full), (text, prefix, settled.__name__)


@pytest.mark.parametrize("text", CONTINUATIONS)
def test_hand_written_continuations_keep_their_answer(text):
    settled_prefixes_agree(text)


def test_random_continuations_keep_their_answer():
    alphabet = ["y", "e", "s", "n", "o", "N", "Y", "t", "x", " ", ".", ",", "\n", "\t", "\r", "\u2028"]
    rng = random.Random(0)
    for _ in range(3000):
        settled_prefixes_agree("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 9))))
    for letters in itertools.product(["n", "o", "y", "e", "s", " ", "."], repeat=4):
        settled_prefixes_agree("".join(letters))


def test_where_each_answer_settles():
    # POPE reads the first sentence: a newline does not end it, a "." or a whole word "no" settles it.
    assert [pope_answer_settled(t) for t in ("Yes", "Yes\n", "Yes,", "No", "No,", "No, there", "Yes.", ".")] == [
        False, False, False, False, False, True, True, True]
    assert parse_pope_answer("Yes\nThere is no dog.") == "no"
    # MME reads the first four characters of the written response.
    assert [mme_answer_settled(t) for t in ("", "Y", "Ye", "Yes", "No", "N", ". N", "A\nb", "Abcd")] == [
        False, False, False, True, True, False, False, False, True]


@pytest.fixture(scope="module")
def tiny():
    return tiny_llava(seed=0)


def _inputs(processor, n=5):
    questions = ["Is there a dog in the image?", "yes", "left right", "What color is the ball?", "one two three"]
    prompts = [render_prompt(processor, [{"role": "user", "content": "<image>\n" + q}]) for q in questions[:n]]
    return prompts, [color_image(i) for i in range(n)]


def test_rows_stop_once_settled_and_keep_a_prefix_of_their_tokens(tiny):
    model, processor = tiny
    prompts, images = _inputs(processor)
    assert keeps_prefixes(processor.tokenizer)
    free = generate_tokens(model, processor, prompts, images, max_new_tokens=8)
    decode = processor.tokenizer.decode

    def settled(text):
        return len(text) >= 3

    cut = generate_tokens(model, processor, prompts, images, max_new_tokens=8, settled=settled)
    assert any(len(c) < len(f) for c, f in zip(cut, free))
    for c, f in zip(cut, free):
        assert f[:len(c)] == c
        # Cut right after the first token whose text is settled; a row never settled runs as before.
        first = next((n for n in range(1, len(f) + 1) if settled(decode(f[:n], skip_special_tokens=True).strip())),
                     len(f))
        assert len(c) == first
    alone = [generate_batch(model, processor, [p], [i], max_new_tokens=8, settled=settled)[0]
             for p, i in zip(prompts, images)]
    assert generate_batch(model, processor, prompts, images, max_new_tokens=8, settled=settled) == alone


def test_sampling_never_stops_at_a_settled_answer(tiny):
    model, processor = tiny
    prompts, images = _inputs(processor, 1)
    with pytest.raises(ValueError, match="greedy decoding only"):
        generate_tokens(model, processor, prompts, images, do_sample=True, settled=lambda text: True)
