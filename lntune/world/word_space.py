"""The LLM's word space as seen by the world's vision tower: the LLM's own (frozen) input embeddings of the
words that name what a grid cell holds.

The world's contrastive tower learns, next to CLIP's loss, to make every patch token name its cell's content
in these embeddings (see `PatchWords` in tower_objectives.py), so that a LLaVA linear projector trained on
captions can map image tokens onto words the LLM already reads, as real CLIP patch features map linearly
onto a real LLM's embeddings. Only the tower sees these targets; the projector and the LLM never do.

    python -c "from lntune.world.word_space import embedded_word_space; print(embedded_word_space(['ball'], ['red']))"
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lntune.errors import LntuneError


@dataclass
class WordSpace:
    """Input-embedding rows of the LLM for each content word (a word of several tokens: their mean)."""

    content_words: list[str]
    """What a patch can name: the object categories, one word per background (for empty cells), the colours."""
    color_words: list[str]
    content: object  # torch.Tensor (len(content_words), hidden)
    colors: object  # torch.Tensor (len(color_words), hidden)
    llm: str
    """Which LLM the embeddings come from (its cache name) and a hash of the rows used."""
    token_norm: float
    """Mean L2 norm of the LLM's input-embedding rows: the scale its decoder expects of an input token."""


def input_embedding_table(llm_dir: Path):
    """The `embed_tokens` weight of a safetensors causal-LM directory, read without building the model."""
    from safetensors import safe_open

    files = sorted(Path(llm_dir).glob("*.safetensors"))
    for path in files:
        with safe_open(str(path), "pt") as f:
            keys = [k for k in f.keys() if k.endswith("embed_tokens.weight")]
            if keys:
                return f.get_tensor(keys[0]).float()
    raise LntuneError(f"{llm_dir}: no embed_tokens weight in its safetensors files")


def word_vectors(tokenizer, table, words: list[str]):
    """One row per word: the mean input embedding of the tokens of " word" (as it appears mid-sentence)."""
    import torch

    rows = []
    for word in words:
        ids = tokenizer.encode(" " + word, add_special_tokens=False)
        if not ids:
            raise LntuneError(f"the tokenizer maps {word!r} to no tokens")
        rows.append(table[ids].mean(0))
    return torch.stack(rows)


def embedded_word_space(content_words: list[str], color_words: list[str]) -> WordSpace:
    """The word space of the embedded default LLM (SmolLM2-135M-Instruct), read once per process and word list
    (tower settings ask for it on every cache lookup)."""
    return _embedded_word_space(tuple(content_words), tuple(color_words))


@lru_cache(maxsize=4)
def _embedded_word_space(content_words: tuple, color_words: tuple) -> WordSpace:
    from transformers import AutoTokenizer

    from lntune.model.embedded import CACHE_NAME, embedded_llm_dir

    llm_dir = embedded_llm_dir()
    tokenizer = AutoTokenizer.from_pretrained(llm_dir)
    table = input_embedding_table(llm_dir)
    content, colors = word_vectors(tokenizer, table, content_words), word_vectors(tokenizer, table, color_words)
    digest = hashlib.sha256(content.numpy().tobytes() + colors.numpy().tobytes()).hexdigest()[:12]
    return WordSpace(list(content_words), list(color_words), content, colors, f"{CACHE_NAME}:{digest}",
                     round(float(table.norm(dim=-1).mean()), 4))


def world_words(world: dict) -> tuple[list[str], list[str]]:
    """(content words, colour words) of a world: categories, background nouns and colours (a patch can name any of
    them: patch_words.py), and the colours."""
    from lntune.world.language import BACKGROUND_NOUNS

    colors = list(world["colors"])
    return list(world["categories"]) + [BACKGROUND_NOUNS[b] for b in world["backgrounds"]] + colors, colors
