"""Tiny random models built from configs (no downloads), saved as real HF directories for tests.

    llm_dir = save_tiny_llm(tmp_path / "llm", arch="llama")
    vision_dir = save_tiny_vision(tmp_path / "vision", kind="clip")
    model, processor = build_mllm(llm_dir, vision_dir)
"""

from pathlib import Path

WORDS = ("a an the is there in image yes no what color red green blue ball box tree car one two three left right "
         "of picture describe this how many are answer question please or and it on with").split()
SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
VOCAB_SIZE = 64  # tokenizer size == the tiny LLM's vocab; lntune adds <image> and <pad>

TEXT_DIMS = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, head_dim=8)


def word_level_tokenizer(vocabulary: list[str]):
    """A tokenizer over whole words: `vocabulary` starts with <unk>, <s>, </s> (ids 0-2), words split on
    whitespace, ChatML's markers added as special tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(vocabulary)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    return tok


def tiny_tokenizer():
    words = SPECIALS + list(WORDS)
    tok = word_level_tokenizer(words + [f"w{filler}" for filler in range(VOCAB_SIZE - len(words))])
    assert len(tok) == VOCAB_SIZE
    return tok


def word_level_llama(vocabulary: list[str], text_dims: dict, tie_word_embeddings: bool = False, seed: int = 0):
    """(random LlamaForCausalLM, its word-level tokenizer over `vocabulary`), to run the real pipeline in seconds."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = word_level_tokenizer(vocabulary)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(vocabulary), tie_word_embeddings=tie_word_embeddings,
                                         bos_token_id=1, eos_token_id=2, max_position_embeddings=512, **text_dims))
    return model, tokenizer


def text_config(arch="llama", tie=False):
    import transformers

    common = dict(vocab_size=VOCAB_SIZE, tie_word_embeddings=tie, bos_token_id=1, eos_token_id=2,
                  max_position_embeddings=256, **TEXT_DIMS)
    classes = {"llama": "LlamaConfig", "qwen2": "Qwen2Config", "qwen3": "Qwen3Config", "gemma2": "Gemma2Config",
               "mistral": "MistralConfig"}
    return getattr(transformers, classes[arch])(**common)


def save_tiny_llm(path, arch="llama", tie=False, seed=0) -> Path:
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(text_config(arch, tie))
    path = Path(path)
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def save_tiny_vision(path, kind="clip", image_size=32, patch_size=8, seed=0) -> Path:
    import torch
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, SiglipImageProcessor,
                              SiglipVisionConfig, SiglipVisionModel)

    torch.manual_seed(seed)
    dims = dict(hidden_size=12, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
                image_size=image_size, patch_size=patch_size)
    if kind == "clip":
        model = CLIPVisionModel(CLIPVisionConfig(**dims))
        processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                       crop_size={"height": image_size, "width": image_size})
    else:
        model = SiglipVisionModel(SiglipVisionConfig(**dims))
        processor = SiglipImageProcessor(size={"height": image_size, "width": image_size})
    path = Path(path)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


COLORS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}


def make_tiny_run_inputs(root, samples=24, seed=0) -> dict:
    """Tiny LLM + CLIP + a LLaVA JSON of coloured squares (multi-turn on odd samples); returns a config dict."""
    import json
    import random

    from PIL import Image

    root = Path(root)
    llm, vision = save_tiny_llm(root / "llm"), save_tiny_vision(root / "vision")
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    records = []
    for i in range(samples):
        color = rng.choice(list(COLORS))
        Image.new("RGB", (32, 32), COLORS[color]).save(images / f"{i}.png")
        turns = [{"from": "human", "value": "<image>\nwhat color is the ball"}, {"from": "gpt", "value": color}]
        if i % 2:
            turns += [{"from": "human", "value": "is there a ball"}, {"from": "gpt", "value": "yes there is a ball"}]
        records.append({"id": f"s{i}", "image": f"{i}.png", "conversations": turns})
    (root / "data.json").write_text(json.dumps(records))
    return {
        "output_dir": str(root / "run"),
        "model": {"llm": str(llm), "vision": str(vision)},
        "data": {"path": str(root / "data.json"), "image_folder": str(images)},
        "train": {"strategy": "layernorm", "batch_size": 4, "lr": 1.0e-2, "max_steps": 6, "log_steps": 1},
    }
