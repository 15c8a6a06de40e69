"""Chat templates lntune knows by name, and `ensure_chat_template` to give a tokenizer one.

Every prompt in lntune is rendered with `tokenizer.apply_chat_template(messages, tokenize=False, ...)`,
the image being the literal `<image>` placeholder in the user text ("<image>\\n" + question, as in LLaVA).
A tokenizer that ships its own template (SmolLM2, Qwen, Llama-2-chat) keeps it; base models (Vicuna,
LLaMA-2) get one of these, written from the documented formats:

- "chatml" (SmolLM2, Qwen): `<|im_start|>{role}\\n{content}<|im_end|>\\n` per message; the generation
  prompt is `<|im_start|>assistant\\n`. No default system message.
- "vicuna_v1" (LLaVA's conv_vicuna_v1, Vicuna v1.1): `{bos}{system} USER: {q} ASSISTANT: {a}{eos}USER: ...`,
  the generation prompt being `ASSISTANT:`; the default system message is Vicuna's.
- "llama2_chat" (LLaMA-2-chat): `{bos}[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{q} [/INST] {a} {eos}` and
  `{bos}[INST] {q} [/INST]` for later turns; no default system message.

Message content is a string, or Hugging Face's multimodal list of parts (what llava-hf model cards show):
`[{"type": "image"}, {"type": "text", "text": "..."}]`, each image part rendered as the processor's image
token and a newline ("<image>\\n"), text parts as their text, in order — so the list form of a question
renders exactly like lntune's own "<image>\\n" + question.

Each template renders a conversation so that the rendering of its first k messages (with the generation
prompt when message k+1 is the assistant's) is a prefix of the full rendering: lntune's label masking
(lntune/data/conversation.py) relies on that. Try one with:

    python -c "from lntune.data.templates import TEMPLATES; print(TEMPLATES['vicuna_v1'])"
"""

from __future__ import annotations

from lntune.errors import LntuneError

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)

# Jinja renders undefined special tokens as '' by default; these guards make the fallback explicit.
_BOS = "{%- set bos = bos_token if bos_token is defined and bos_token else '' -%}"
_EOS = "{%- set eos = eos_token if eos_token is defined and eos_token else '</s>' -%}"

# A message's content as text: a string as is, a list of HF parts joined (image parts become the image token).
_CONTENT = (
    "{%- macro content(c) -%}{%- if c is string -%}{{- c -}}{%- else -%}{%- for part in c -%}"
    "{%- if part['type'] == 'image' -%}{{- '<image>\\n' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}"
    "{%- else -%}{{- raise_exception('unsupported content part type: ' ~ part['type']) -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}{%- endmacro -%}"
)

# The system message, when present, must come first; it is split off before the turn loop.
_SPLIT_SYSTEM = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set system = content(messages[0]['content']) -%}{%- set turns = messages[1:] -%}"
    "{%- else -%}{%- set system = DEFAULT -%}{%- set turns = messages -%}{%- endif -%}"
)

_ALTERNATE = (
    "{%- if (m['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{- raise_exception('roles must alternate user/assistant, starting with the user') -}}"
    "{%- endif -%}"
)

CHATML = (
    _CONTENT + "{%- for m in messages -%}"
    "{{- '<|im_start|>' ~ m['role'] ~ '\\n' ~ content(m['content']) ~ '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

VICUNA_V1 = (
    _CONTENT + _BOS + _EOS + _SPLIT_SYSTEM.replace("DEFAULT", repr(VICUNA_SYSTEM))
    + "{{- bos ~ system ~ ' ' -}}"
    "{%- for m in turns -%}" + _ALTERNATE
    + "{%- if m['role'] == 'user' -%}{{- 'USER: ' ~ content(m['content']) ~ ' ' -}}"
    "{%- else -%}{{- 'ASSISTANT: ' ~ content(m['content']) ~ eos -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}"
)

LLAMA2_CHAT = (
    _CONTENT + _BOS + _EOS + _SPLIT_SYSTEM.replace("DEFAULT", "''")
    + "{%- for m in turns -%}" + _ALTERNATE
    + "{%- if m['role'] == 'user' -%}"
    "{{- bos ~ '[INST] ' -}}"
    "{%- if loop.first and system -%}{{- '<<SYS>>\\n' ~ system ~ '\\n<</SYS>>\\n\\n' -}}{%- endif -%}"
    "{{- content(m['content']) ~ ' [/INST]' -}}"
    "{%- else -%}{{- ' ' ~ content(m['content']) ~ ' ' ~ eos -}}{%- endif -%}"
    "{%- endfor -%}"
)

TEMPLATES: dict[str, str] = {
    "chatml": CHATML,
    "vicuna_v1": VICUNA_V1,
    "llama2_chat": LLAMA2_CHAT,
}


def _tokenizer_of(tokenizer_or_processor):
    return getattr(tokenizer_or_processor, "tokenizer", tokenizer_or_processor)


def default_template_name(tokenizer) -> str:
    """The template a tokenizer without one gets: ChatML when its vocabulary has `<|im_start|>`, else Vicuna v1."""
    vocab = _tokenizer_of(tokenizer).get_vocab()
    return "chatml" if "<|im_start|>" in vocab and "<|im_end|>" in vocab else "vicuna_v1"


def ensure_chat_template(tokenizer, name: str | None = None) -> str:
    """Give `tokenizer` (or a processor's tokenizer) a chat template and return which one it has.

    With `name` ("chatml", "vicuna_v1", "llama2_chat") that template is set, replacing any other; without
    it the tokenizer keeps its own template (returns "own") or, having none, gets `default_template_name`.
    No tokens are added to the vocabulary. A processor that carries its own `chat_template` gets the
    same string, so both render identically.
    """
    tok = _tokenizer_of(tokenizer)
    if name is None:
        if getattr(tok, "chat_template", None):
            return "own"
        name = default_template_name(tok)
    if name not in TEMPLATES:
        raise LntuneError(f"chat_template: unknown template {name!r}; known: {', '.join(sorted(TEMPLATES))}")
    tok.chat_template = TEMPLATES[name]
    if tok is not tokenizer and hasattr(tokenizer, "chat_template"):
        tokenizer.chat_template = TEMPLATES[name]
    return name
