"""What each `lntune bench --preset NAME` measures: the model, the data, the batch and the device.

    embedded (default)  SmolLM2-135M-Instruct + a CLIP tower of the quick world's shape (64 px, patch 16:
                        16 image tokens), the quick world's instruct data, batch 8, fp32 on CPU
    tiny                a tiny random Llama + CLIP and a synthetic LLaVA JSON (seconds; the tests use it)
    llava-llama2-7b, llava-llama2-13b, llava-vicuna-7b
                        with --random-init: the paper's model shapes (CLIP ViT-L/14 + LLaMA-2) with random
                        weights — memory does not care about their values — bf16 frozen weights, fp32
                        trainable ones, gradient checkpointing, synthetic batches; CUDA only (Table 2)

A preset resolves to a *recipe*: a JSON-able dict from which every worker process rebuilds the same model
and batches. Files a recipe needs (tiny model, vision tower) are written once under `workdir`.

    python -c "from lntune.bench.presets import recipe; print(recipe('tiny', '/tmp/b'))"
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from lntune.errors import LntuneError
from lntune.locks import write_text_atomic
from lntune.model.load import save_mllm
from lntune.presets import check_name, preset_names

FILE_PRESETS = ("embedded", "tiny")
PAPER_PRESETS = preset_names("params")  # the paper-size models of lntune/configs/presets/params.yaml
PRESETS = FILE_PRESETS + PAPER_PRESETS

# A paper-size synthetic batch: LLaVA's per-device batch of 4 (its stage-2 scripts: 16 per device with 8 A100s
# for 13B is too much for one card) at CLIP-L/14's 256 image tokens plus a typical instruct conversation.
PAPER_BATCH = dict(batch_size=4, text_tokens=400, supervised_tokens=200)


def recipe(preset: str, workdir, random_init: bool = False, batch_size: int | None = None, device: str | None = None,
           lora_r: int = 32) -> dict:
    """The recipe of `preset`: {"preset", "kind": "files" | "random", "device", "batch_size", ...}."""
    import torch

    check_name("bench", preset, PRESETS)
    cuda = torch.cuda.is_available()
    device = device or ("cuda" if cuda else "cpu")
    if device == "cuda" and not cuda:
        raise LntuneError("--device cuda: no CUDA device is available")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    common = {"preset": preset, "device": device, "seed": 0, "lr": 1e-3,
              "lora": {"r": lora_r, "alpha": 2 * lora_r, "dropout": 0.05}}
    if preset in PAPER_PRESETS:
        if not random_init:
            raise LntuneError(f"bench preset {preset!r} has no local weights: add --random-init "
                              "(random weights; memory and speed do not depend on their values)")
        if device != "cuda":
            raise LntuneError(f"bench preset {preset!r} needs a CUDA GPU (a 7B/13B model in bf16 with gradient "
                              "checkpointing, as the paper's Table 2) and none is available. Try --preset embedded")
        return {**common, "kind": "random", "model": preset, "dtype": "bfloat16", "mixed_precision": "bf16",
                "gradient_checkpointing": True, **PAPER_BATCH, **({"batch_size": batch_size} if batch_size else {})}
    if random_init and preset != "tiny":
        raise LntuneError("--random-init applies to the paper-size presets and tiny")
    if preset == "tiny":
        if random_init:  # the paper presets' code path (bf16, checkpointing, synthetic batches) at toy size
            return {**common, "kind": "random", "model": "tiny", "dtype": "bfloat16", "mixed_precision": "bf16",
                    "gradient_checkpointing": True, "batch_size": batch_size or 2, "text_tokens": 12,
                    "supervised_tokens": 5}
        return {**common, **_tiny_files(workdir / "tiny"), "kind": "files", "dtype": "float32", "mixed_precision": "no",
                "gradient_checkpointing": False, "batch_size": batch_size or 4, "max_length": 256}
    files = _embedded_files(workdir)
    # 400 samples: one mega-batch of length grouping (50 batches of 8), and less start-up work per row
    return {**common, **files, "kind": "files", "dtype": "float32", "mixed_precision": "bf16" if device == "cuda" else "no",
            "gradient_checkpointing": False, "batch_size": batch_size or 8, "max_length": 2048, "max_samples": 400}


def random_config(name: str):
    """The LlavaConfig a "random" recipe instantiates: a paper preset's, or the tiny one's."""
    if name != "tiny":
        from lntune.accounting import preset_config

        return preset_config(name)
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    vocab = len(tiny_vocab()) + 1  # + the image token
    text = LlamaConfig(vocab_size=vocab, tie_word_embeddings=False, max_position_embeddings=512, **TINY_TEXT)
    config = LlavaConfig(vision_config=CLIPVisionConfig(**TINY_VISION), text_config=text, image_token_id=vocab - 1,
                         vision_feature_layer=-2, vision_feature_select_strategy="default",
                         multimodal_projector_bias=True, tie_word_embeddings=False)
    config.projector_type = "linear"
    return config


def _embedded_files(workdir: Path) -> dict:
    """SmolLM2 + the quick world's data; its trained tower when cached, else a random one of the same shape."""
    from lntune.model.embedded import embedded_llm_dir
    from lntune.world.cache import ensure_world, tower_cache_dir

    world = ensure_world("quick", 0, progress=False)
    tower = tower_cache_dir(world, "contrastive", 0)
    if (tower / "tower.json").is_file():
        vision, vision_note = tower, "the quick world's trained CLIP tower"
    else:
        vision, vision_note = _random_world_tower(workdir / "tower-quick-random"), \
            "a random CLIP of the quick world tower's shape (not trained yet; speed does not depend on weights)"
    return {"llm": str(embedded_llm_dir()), "vision": str(vision), "vision_note": vision_note,
            "data": str(world / "instruct" / "mixed.json"), "images": str(world / "images")}


def _random_world_tower(out: Path) -> Path:
    from transformers import CLIPVisionConfig, CLIPVisionModel

    from lntune.world.presets import get_preset
    from lntune.world.vision_tower import image_processor

    if (out / "config.json").is_file():
        return out
    preset = get_preset("quick")
    t = preset.tower
    config = CLIPVisionConfig(hidden_size=t.hidden_size, intermediate_size=4 * t.hidden_size, num_hidden_layers=t.num_layers,
                              num_attention_heads=t.num_heads, image_size=preset.image_size, patch_size=preset.patch_size,
                              projection_dim=t.projection_dim)
    save_mllm(CLIPVisionModel(config), image_processor(preset.image_size), out)
    return out


# ---- the tiny preset: a random Llama with a word-level tokenizer, a random CLIP, coloured squares ----

TINY_WORDS = ("a the is there in image yes no what color red green blue ball box shape how many one two three "
              "left right of picture describe this it on with and").split()
TINY_SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
TINY_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=8)
TINY_VISION = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                   image_size=32, patch_size=8)
TINY_SAMPLES = 48


def tiny_vocab() -> list[str]:
    return TINY_SPECIALS + TINY_WORDS


def _tiny_files(root: Path) -> dict:
    llm, vision, data, images = root / "llm", root / "vision", root / "data.json", root / "images"
    if not (llm / "config.json").is_file():
        _save_tiny_llm(llm)
    if not (vision / "config.json").is_file():
        _save_tiny_vision(vision)
    if not data.is_file():
        _write_tiny_data(data, images)
    return {"llm": str(llm), "vision": str(vision), "data": str(data), "images": str(images)}


def _tiny_llm():
    """(random LlamaForCausalLM, its tokenizer) over the whole words of `tiny_vocab()` (<unk>, <s>, </s> are ids
    0-2), words split on whitespace, ChatML's markers added as special tokens."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(tiny_vocab())}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(vocab), tie_word_embeddings=False, bos_token_id=1,
                                         eos_token_id=2, max_position_embeddings=512, **TINY_TEXT))
    return model, tokenizer


def _save_tiny_llm(out: Path) -> None:
    save_mllm(*_tiny_llm(), out)


def _save_tiny_vision(out: Path) -> None:
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    size = TINY_VISION["image_size"]
    processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    save_mllm(CLIPVisionModel(CLIPVisionConfig(**TINY_VISION)), processor, out)


def _write_tiny_data(data: Path, images: Path) -> None:
    from PIL import Image

    colors = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
    images.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    records = []
    for i in range(TINY_SAMPLES):
        color = rng.choice(sorted(colors))
        Image.new("RGB", (32, 32), colors[color]).save(images / f"{i}.png")
        turns = [{"from": "human", "value": "<image>\nwhat color is the ball"}, {"from": "gpt", "value": f"the ball is {color}"}]
        for _ in range(i % 4):  # 0-3 more turns: samples of different lengths, as real data
            turns += [{"from": "human", "value": "is there a box"}, {"from": "gpt", "value": "no there is one ball"}]
        records.append({"id": f"tiny-{i}", "image": f"{i}.png", "conversations": turns})
    write_text_atomic(data, json.dumps(records))

