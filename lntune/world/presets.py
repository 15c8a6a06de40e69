"""Sizes of the built-in synthetic world: one `WorldPreset` per name (smoke, quick, full).

A preset fixes the image geometry (resolution, CLIP patch size, layout grid), how many training and
evaluation images each file gets, and the small vision tower trained on the world. The values live in
lntune/configs/presets/world.yaml (with what each preset is for); this module gives them their types and checks.

    python -c "from lntune.world.presets import get_preset; print(get_preset('quick'))"
"""

from __future__ import annotations

from dataclasses import dataclass

from lntune.errors import LntuneError
from lntune.presets import check_name, preset, preset_names


@dataclass(frozen=True)
class TowerPreset:
    """The vision tower: a small CLIP ViT trained from scratch on the world's training images."""

    hidden_size: int
    """Width of the ViT (the LLM's projector maps this to the LLM width)."""
    num_layers: int
    num_heads: int
    text_hidden_size: int
    """Width of the small CLIP text encoder used only by the contrastive objective."""
    text_layers: int
    projection_dim: int
    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_steps: int
    word_weight: float
    """Weight of the contrastive objective's per-patch word loss (patch_words.py); 0 trains CLIP's loss alone."""
    word_cosine_weight: float
    """Within that loss, the weight of the term that pulls each patch's word-space output onto its content word."""


@dataclass(frozen=True)
class WorldPreset:
    """How big the world is. Every count is exact: the generator writes exactly these many items."""

    name: str
    image_size: int
    """Square images, in pixels."""
    patch_size: int
    """CLIP patch size: the LLM sees (image_size / patch_size)**2 image tokens."""
    grid: int
    """Objects sit in the cells of a grid x grid layout (a 2x2 grid lines up with 2x2 patches per cell)."""
    max_objects: int
    train_images: int
    """Images used for training (pretrain, instruct, vision tower, Karpathy train split)."""
    instruct_per_type: int
    """Samples in each of instruct/{conversation,detail,complex_reasoning}.json."""
    vqa_samples: int
    """Samples in instruct/vqa.json (short-answer questions; mixed.json has all four files)."""
    karpathy_train: int
    karpathy_val: int
    karpathy_test: int
    pope_images: int
    """Images per POPE split (the three splits share images; 6 questions each)."""
    mme_images: int
    """Images per MME subtask (existence, count, position, color; 2 questions each)."""
    vqav2_questions: int
    tower: TowerPreset

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise LntuneError(f"world preset {self.name}: image_size {self.image_size} is not a multiple of "
                              f"patch_size {self.patch_size}")
        if self.grid not in (2, 3):
            raise LntuneError(f"world preset {self.name}: grid must be 2 or 3, got {self.grid}")
        if not 3 <= self.max_objects <= self.grid * self.grid:
            raise LntuneError(f"world preset {self.name}: max_objects must be in 3..{self.grid ** 2} "
                              f"(POPE needs 3 objects per image)")
        if self.karpathy_train > self.train_images:
            raise LntuneError(f"world preset {self.name}: karpathy_train > train_images")


def _build(name: str, data: dict) -> WorldPreset:
    return WorldPreset(name=name, **{**data, "tower": TowerPreset(**data["tower"])})


PRESETS = {name: _build(name, preset("world", name)) for name in preset_names("world")}


def get_preset(name: str) -> WorldPreset:
    """The preset called `name`; a LntuneError listing the choices otherwise."""
    check_name("world", name, tuple(PRESETS))
    return PRESETS[name]
