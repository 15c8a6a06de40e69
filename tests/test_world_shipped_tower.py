"""The vision tower lntune ships for the quick world: it matches the world the code generates, and the cache installs
it instead of training, unless asked to train.

    python -m pytest -q tests/test_world_shipped_tower.py
"""

import json

import pytest

from lntune.paths import lntune_home
from lntune.world import shipped_tower as shipped
from lntune.world.cache import ensure_vision_tower, ensure_world
from lntune.world.generate import generate_world
from lntune.world.vision_tower import train_tower


def test_the_shipped_quick_tower_is_the_one_for_the_quick_world(tmp_path):
    from transformers import CLIPVisionModel

    world = generate_world(tmp_path / "quick", "quick", seed=0, progress=False)
    found = shipped.shipped_tower(world, "contrastive", 0)
    assert found == shipped.SHIPPED_TOWERS / "quick-contrastive-s0", (
        "the quick world or the tower training changed: refresh the shipped tower (lntune/world/shipped_tower.py)")
    assert shipped.shipped_tower(world, "contrastive", 1) is None  # another seed trains its own
    assert shipped.shipped_tower(world, "classification", 0) is None
    metrics = json.loads((found / "tower.json").read_text())["metrics"]
    assert metrics["word_probe_accuracy_objects"] > 0.9 and metrics["held_out_retrieval_i2t@32"] > 0.9
    assert CLIPVisionModel.from_pretrained(found).config.num_hidden_layers == 4


@pytest.fixture
def home(tmp_path, monkeypatch):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "models").symlink_to(lntune_home() / "models")  # the converted embedded LLM
    monkeypatch.setenv("LNTUNE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_the_cache_installs_a_matching_shipped_tower_and_trains_when_asked(home, tmp_path, monkeypatch):
    world = ensure_world("smoke", seed=0, progress=False)
    folder = tmp_path / "shipped"
    train_tower(world, folder / "smoke-contrastive-s0", "contrastive", seed=0, progress=False, threads=1)
    monkeypatch.setattr(shipped, "SHIPPED_TOWERS", folder)

    def no_training(*args, **kwargs):
        raise AssertionError("trained although a shipped tower matches")

    with monkeypatch.context() as patched:
        patched.setattr("lntune.world.vision_tower.train_tower", no_training)
        tower = ensure_vision_tower(world, "contrastive", 0, progress=False)
        assert shipped.is_shipped_copy(tower) and not shipped.is_shipped_copy(folder / "smoke-contrastive-s0")
        assert ((tower / "model.safetensors").read_bytes()
                == (folder / "smoke-contrastive-s0" / "model.safetensors").read_bytes())
        assert ensure_vision_tower(world, "contrastive", 0, progress=False) == tower  # cached: nothing happens

    trained = ensure_vision_tower(world, "contrastive", 0, progress=False, threads=1, pretrained=False)
    assert trained == tower and not shipped.is_shipped_copy(tower)  # the shipped copy was replaced by training
    stamp = (tower / "model.safetensors").stat().st_mtime_ns
    assert ensure_vision_tower(world, "contrastive", 0, progress=False) == tower  # a trained tower is kept
    assert (tower / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in (home / "towers").iterdir() if p.name.startswith(".")]
