"""A `POST /v1/chat/completions` body, checked and turned into what `lntune chat` generates from: chat messages
with the `<image>` placeholder, one image, and the decoding options.

    job = parse_chat_request(body, model_id="stage2-layernorm", image_root=None, max_image_bytes=10 * 2**20)

A conversation carries exactly one image (LLaVA-style): an `image_url` part of a user message. That message's
text becomes "<image>\\n" + its text, the user turn `lntune chat` and `lntune eval` ask with, so a one-question
request renders the same prompt as `lntune chat`. Text parts of one message are joined with newlines. Decoding
is greedy when `temperature` is 0 or absent (as `lntune chat`), sampled otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lntune.eval.generate import IMAGE_PLACEHOLDER
from lntune.serve.api_errors import ApiError
from lntune.serve.images import load_image

DEFAULT_MAX_TOKENS = 256  # lntune chat's --max-new-tokens default
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


@dataclass
class ChatJob:
    messages: list[dict]  # {"role", "content": str}, the image as IMAGE_PLACEHOLDER in one user message
    image: object  # PIL RGB image
    max_tokens: int | None  # None: up to DEFAULT_MAX_TOKENS, as far as the model's context allows
    temperature: float
    top_p: float | None
    seed: int | None
    stream: bool
    include_usage: bool

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def parse_chat_request(body, model_id: str, image_root: Path | None, max_image_bytes: int) -> ChatJob:
    """The ChatJob of a decoded JSON body; ApiError (4xx) names the first field that is wrong."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_body")
    model = body.get("model")
    if model != model_id:
        raise ApiError(404, f"the model {model!r} does not exist; this server serves {model_id!r}", param="model",
                       code="model_not_found")
    if body.get("n", 1) != 1:
        raise ApiError(400, "n must be 1: lntune serve returns one choice", param="n", code="unsupported_parameter")
    if body.get("stop") not in (None, [], ""):
        raise ApiError(400, "stop sequences are not supported; answers end at the model's end of turn",
                       param="stop", code="unsupported_parameter")
    messages, image_url = _messages(body.get("messages"))
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    stream_options = body.get("stream_options") or {}
    return ChatJob(
        messages=messages,
        image=load_image(image_url, image_root, max_image_bytes),
        max_tokens=_number(max_tokens, "max_tokens", int, 1, None) if max_tokens is not None else None,
        temperature=_number(body.get("temperature", 0), "temperature", float, 0, 2),
        top_p=_number(body["top_p"], "top_p", float, 0, 1) if body.get("top_p") is not None else None,
        seed=_number(body["seed"], "seed", int, 0, 2**63 - 1) if body.get("seed") is not None else None,
        stream=_flag(body.get("stream", False), "stream"),
        include_usage=_flag(stream_options.get("include_usage", False) if isinstance(stream_options, dict) else None,
                            "stream_options.include_usage"),
    )


def _messages(raw) -> tuple[list[dict], str]:
    if not isinstance(raw, list) or not raw:
        raise ApiError(400, "messages must be a non-empty list", param="messages", code="invalid_messages")
    messages, image_urls = [], []
    for index, message in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise ApiError(400, f"{where} must be an object with role system, user or assistant", param=where,
                           code="invalid_messages")
        texts, urls = _parts(message.get("content"), where)
        if urls and message["role"] != "user":
            raise ApiError(400, f"{where}: only user messages may carry an image", param=where, code="invalid_messages")
        text = "\n".join(texts)
        if IMAGE_PLACEHOLDER in text:
            raise ApiError(400, f"{where}: the text may not contain {IMAGE_PLACEHOLDER!r}; send the image as an "
                           "image_url part", param=where, code="invalid_messages")
        image_urls += urls
        messages.append({"role": ROLES[message["role"]], "content": f"{IMAGE_PLACEHOLDER}\n{text}" if urls else text})
    if not image_urls:
        raise ApiError(400, "no image: this model answers about an image; add an image_url part to a user message",
                       param="messages", code="image_required")
    if len(image_urls) > 1:
        raise ApiError(400, f"the conversation has {len(image_urls)} images; lntune serve takes one per conversation "
                       "(LLaVA-style)", param="messages", code="too_many_images")
    return messages, image_urls[0]


def _parts(content, where: str) -> tuple[list[str], list[str]]:
    """(texts, image URLs) of a message's content: a string, or a list of text / image_url parts."""
    if isinstance(content, str):
        return [content], []
    if not isinstance(content, list):
        raise ApiError(400, f"{where}.content must be a string or a list of parts", param=f"{where}.content",
                       code="invalid_messages")
    texts, urls = [], []
    for index, part in enumerate(content):
        at = f"{where}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            image_url = part.get("image_url")
            urls.append(image_url.get("url") if isinstance(image_url, dict) else image_url)
        else:
            raise ApiError(400, f"{at} must be a text part or an image_url part", param=at, code="invalid_messages")
    return texts, urls


def _number(value, name: str, kind, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise ApiError(400, f"{name} must be {'an integer' if kind is int else 'a number'}, got {value!r}", param=name,
                       code="invalid_value")
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"between {low} and {high}"
        raise ApiError(400, f"{name} must be {bound}, got {value!r}", param=name, code="invalid_value")
    return kind(value)


def _flag(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false, got {value!r}", param=name, code="invalid_value")
    return value
