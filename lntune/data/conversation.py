"""Render a conversation with the tokenizer's chat template and label exactly its assistant turns.

`encode_conversation(tokenizer, messages)` returns input_ids and labels where every token is -100 except
each assistant turn's content tokens and the turn's end marker (`<|im_end|>` for ChatML, `</s>` for Vicuna,
` </s>` for Llama-2). It works for any template that renders turns as prefixes of the whole conversation:

1. render the whole conversation, and for each assistant turn k the conversation up to k (with the
   generation prompt) and through k; the answer starts after the first and the turn ends with the second;
2. tokenize the whole rendering with character offsets and label the tokens overlapping those spans;
3. verify that the labelled tokens decode back to each assistant text and end marker: anything else is a
   LntuneError (LLaVA warns and trains on an all-masked sample; we refuse).

`render_prompt(processor, question, history)` renders an evaluation prompt the same way.

    python -c "from lntune.data.conversation import encode_conversation; help(encode_conversation)"
"""

from __future__ import annotations

from dataclasses import dataclass

from lntune.data.records import IMAGE_TAG, ROLES
from lntune.errors import LntuneError

IGNORE_INDEX = -100


@dataclass
class Encoded:
    """A tokenized conversation: labels are the input ids on supervised tokens and IGNORE_INDEX elsewhere."""

    input_ids: list[int]
    labels: list[int]
    truncated: bool = False


def tokenizer_of(processor_or_tokenizer):
    return getattr(processor_or_tokenizer, "tokenizer", processor_or_tokenizer)


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    """The chat template applied to `messages` as text; template errors become LntuneError."""
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except TemplateError as err:
        raise LntuneError(f"chat template failed: {err}") from None
    except ValueError as err:  # raised by transformers when the tokenizer has no template
        raise LntuneError(f"chat template: {err}") from None


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, tuple[int, int], tuple[int, int]]]]:
    """The rendered conversation and, per assistant turn, (turn index, content span, end-marker span) in characters."""
    full = render(tokenizer, messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = render(tokenizer, messages[:i], add_generation_prompt=True)
        upto = render(tokenizer, messages[: i + 1])
        if not (upto.startswith(prefix) and full.startswith(upto)):
            raise LntuneError(
                f"the chat template does not render turn {i} as a continuation of the turns before it, "
                "so its labels cannot be placed"
            )
        content = message["content"]
        start = upto.find(content, len(prefix))
        if start < 0:  # templates that strip the message text (Llama-2's official one does)
            content = content.strip()
            start = upto.find(content, len(prefix))
        if start < 0:
            raise LntuneError(f"the text of assistant turn {i} does not appear in the rendered conversation")
        end = start + len(content)
        # The end marker with any whitespace before it (Llama-2's " </s>"), not the newline after it (ChatML).
        spans.append((i, (start, end), (end, end + len(upto[end:].rstrip()))))
    return full, spans


def _collapse(text: str) -> str:
    return " ".join(text.split())


def encode_conversation(tokenizer, messages: list[dict]) -> Encoded:
    """Tokenize `messages` (role/content dicts) with its chat template; label assistant turns only, verified.

    `tokenizer` must be a fast tokenizer (character offsets). Raises LntuneError when the supervised tokens
    do not decode back to the assistant texts.
    """
    tokenizer = tokenizer_of(tokenizer)
    if not getattr(tokenizer, "is_fast", False):
        raise LntuneError(f"label masking needs a fast tokenizer (with offsets); got {type(tokenizer).__name__}")
    full, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = [IGNORE_INDEX] * len(ids)
    for turn, (cs, ce), (es, ee) in spans:
        for what, (a, b) in (("text", (cs, ce)), ("end marker", (es, ee))):
            if a == b:
                continue
            picked = [j for j, (s, e) in enumerate(offsets) if e > s and s < b and e > a]
            decoded = tokenizer.decode([ids[j] for j in picked], clean_up_tokenization_spaces=False)
            if _collapse(decoded) != _collapse(full[a:b]):
                raise LntuneError(
                    f"label masking: the supervised tokens of assistant turn {turn} ({what}) decode to "
                    f"{decoded[:60]!r}, not {full[a:b][:60]!r}"
                )
            for j in picked:
                labels[j] = ids[j]
    if all(label == IGNORE_INDEX for label in labels):
        raise LntuneError("label masking: no supervised tokens (no assistant turn)")
    return Encoded(input_ids=list(ids), labels=labels)


def expand_image_tags(messages: list[dict], image_token: str, count: int) -> list[dict]:
    """Messages with each `<image>` tag replaced by `count` image tokens (the model's tokens per image)."""
    return [{**m, "content": m["content"].replace(IMAGE_TAG, image_token * count)} for m in messages]


def num_image_tokens(processor) -> int:
    """How many `<image>` tokens one image becomes in the LLM's input."""
    from PIL import Image

    pixels = processor.image_processor(Image.new("RGB", (32, 32)), return_tensors="pt")["pixel_values"]
    height, width = pixels.shape[-2:]
    count = (height // processor.patch_size) * (width // processor.patch_size) + processor.num_additional_image_tokens
    return count - 1 if processor.vision_feature_select_strategy == "default" else count


def _history_messages(history) -> list[dict]:
    messages = []
    for item in history or []:
        if isinstance(item, dict) and "role" in item:
            messages.append({"role": item["role"], "content": item["content"]})
        elif isinstance(item, dict) and "from" in item:
            messages.append({"role": ROLES[item["from"]], "content": item["value"]})
        else:
            question, answer = item
            messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return messages


def render_prompt(processor, question: str, history=None) -> str:
    """The evaluation prompt: `history` turns, then a user turn "<image>\\n" + question, and the generation prompt.

    `history` is a list of (question, answer) pairs (text-only demonstrations, e.g. few-shot captions) or of
    chat messages ({"role", "content"}, a system message included). The image stays the processor's
    `<image>` placeholder, which the processor expands when called with the image.
    """
    image_token = getattr(processor, "image_token", None) or IMAGE_TAG
    messages = _history_messages(history) + [{"role": "user", "content": f"{image_token}\n{question}"}]
    return render(tokenizer_of(processor), messages, add_generation_prompt=True)
