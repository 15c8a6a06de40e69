"""Sizes of the built-in synthetic world: one `WorldPreset` per name (smoke, quick, full).

A preset fixes the image geometry (resolution, CLIP patch size, layout grid), how many training and
evaluation images each file gets, and the small vision tower trained on the world. The numbers were
chosen by timing on a 2-core CPU:

- smoke: a few seconds; used by the tests.
- quick: the world behind `lntune quickstart` (generation ~5 s, vision tower ~1 min). Its evaluation files rest on
  150 POPE images (2,700 questions over the three splits), 160 MME images, 150 VQAv2 questions and 150 test
  images per caption set: enough for a 10-point accuracy difference on POPE to show in a paired interval.
- full:  the world behind `lntune reproduce --preset world-full`.

    python -c "from lntune.world.presets import get_preset; print(get_preset('quick'))"
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lntune.errors import LntuneError


@dataclass(frozen=True)
class TowerPreset:
    """The vision tower: a small CLIP ViT trained from scratch on the world's training images."""

    hidden_size: int = 128
    """Width of the ViT (the LLM's projector maps this to the LLM width)."""
    num_layers: int = 4
    num_heads: int = 4
    text_hidden_size: int = 64
    """Width of the small CLIP text encoder used only by the contrastive objective."""
    text_layers: int = 1
    projection_dim: int = 128
    steps: int = 300
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 20
    word_weight: float = 1.0
    """Weight of the contrastive objective's per-patch word loss (patch_words.py); 0 trains CLIP's loss alone."""
    word_cosine_weight: float = 5.0
    """Within that loss, the weight of the term that pulls each patch's word-space output onto its content word."""


@dataclass(frozen=True)
class WorldPreset:
    """How big the world is. Every count is exact: the generator writes exactly these many items."""

    name: str
    image_size: int = 64
    """Square images, in pixels."""
    patch_size: int = 16
    """CLIP patch size: the LLM sees (image_size / patch_size)**2 image tokens."""
    grid: int = 2
    """Objects sit in the cells of a grid x grid layout (a 2x2 grid lines up with 2x2 patches per cell)."""
    max_objects: int = 4
    train_images: int = 800
    """Images used for training (pretrain, instruct, vision tower, Karpathy train split)."""
    instruct_per_type: int = 400
    """Samples in each of instruct/{conversation,detail,complex_reasoning}.json (mixed.json has all three)."""
    karpathy_train: int = 300
    karpathy_val: int = 10
    karpathy_test: int = 150
    pope_images: int = 150
    """Images per POPE split (the three splits share images; 6 questions each)."""
    mme_images: int = 40
    """Images per MME subtask (existence, count, position, color; 2 questions each)."""
    vqav2_questions: int = 150
    tower: TowerPreset = field(default_factory=TowerPreset)

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


PRESETS = {
    "smoke": WorldPreset(
        name="smoke", train_images=40, instruct_per_type=12, karpathy_train=12, karpathy_val=2,
        karpathy_test=4, pope_images=4, mme_images=4, vqav2_questions=12,
        tower=TowerPreset(hidden_size=64, num_layers=2, num_heads=2, text_hidden_size=32, projection_dim=32,
                          steps=20, batch_size=16, warmup_steps=2),
    ),
    "quick": WorldPreset(name="quick"),
    "full": WorldPreset(
        name="full", train_images=6000, instruct_per_type=3000, karpathy_train=2000, karpathy_val=100,
        karpathy_test=300, pope_images=300, mme_images=100, vqav2_questions=1002,
        tower=TowerPreset(steps=1200),
    ),
}


def get_preset(name: str) -> WorldPreset:
    """The preset called `name`; a LntuneError listing the choices otherwise."""
    if name not in PRESETS:
        raise LntuneError(f"unknown world preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]
