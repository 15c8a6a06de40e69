"""The world's vision tower: a few training steps, saved as a plain HF directory, deterministic, cached.

    python -m pytest -q tests/test_world_vision.py
"""

import json

import pytest

from lntune.cli import main as cli_main
from lntune.errors import LntuneError
from lntune.world.generate import generate_world, load_world
from lntune.world.tower_objectives import build_caption_tokenizer, hard_negative, label_names
from lntune.world.vision_tower import train_tower, train_tower_atomic, world_fingerprint


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return generate_world(tmp_path_factory.mktemp("w") / "smoke", "smoke", seed=0, progress=False)


def test_caption_tokenizer_is_word_level_over_the_vocabulary():
    tok = build_caption_tokenizer(["A red ball.", "Two green trees"])
    assert tok.get_vocab() == {"[PAD]": 0, "[UNK]": 1, "[BOS]": 2, "[EOS]": 3, ".": 4, "a": 5, "ball": 6,
                               "green": 7, "red": 8, "trees": 9, "two": 10}
    assert tok.encode("a RED ball.").ids == [2, 5, 8, 6, 4, 3]
    assert tok.encode("a blue ball").ids == [2, 5, 1, 6, 3]


def test_hard_negative_captions_are_false_for_the_scene():
    import random

    from lntune.world import language as L
    from lntune.world.scenes import sample_scene

    rng = random.Random(0)
    for _ in range(200):
        scene = sample_scene(rng, 2, 64, 4)
        wrong = hard_negative(scene, rng)
        changed = [(a, b) for a, b in zip(scene.objects, wrong.objects) if a != b]
        assert len(changed) == 1
        (a, b), = changed
        assert (a.category != b.category) != (a.color != b.color) and (a.cell, a.size) == (b.cell, b.size)
        for caption in (L.coco_caption(wrong, rng), L.flickr_caption(wrong, rng)):
            assert f"{b.color} {b.category}" in caption.lower()  # every caption names the changed object


def test_classification_labels(world):
    from lntune.world.scenes import Scene
    from lntune.world.tower_objectives import classification_targets

    w = load_world(world)
    names = label_names(w)
    assert len(names) == 14 + 8 and names[0] == "category=ball" and names[-1] == "color=brown"
    scene = Scene.from_json(w["images"][0])
    assert scene.to_json() == w["images"][0]
    presence, cat, col, size = classification_targets([scene], w)
    assert presence.shape == (1, 22) and cat.shape == col.shape == size.shape == (1, 4)
    assert int(presence.sum()) == len(scene.categories()) + len({o.color for o in scene.objects})
    for o in scene.objects:
        cell = o.cell[0] * 2 + o.cell[1]
        assert (cat[0, cell], col[0, cell], size[0, cell]) == (
            w["categories"].index(o.category), w["colors"].index(o.color), w["sizes"].index(o.size))
    empty = [c for c in range(4) if c not in {o.cell[0] * 2 + o.cell[1] for o in scene.objects}]
    assert all(cat[0, c] == 14 and col[0, c] == -100 and size[0, c] == -100 for c in empty)


def test_contrastive_tower_saves_loads_with_plain_transformers_and_is_deterministic(world, tmp_path):
    import torch
    from PIL import Image
    from transformers import AutoImageProcessor, CLIPVisionModel

    record = train_tower(world, tmp_path / "a", "contrastive", seed=0, steps=3, progress=False, threads=1)
    assert record["objective"] == "contrastive" and record["tower"]["steps"] == 3
    assert record["world"] == world_fingerprint(world)
    metrics = record["metrics"]
    assert metrics["train_images"] == 40 and metrics["held_out_images"] == 36
    for key in ("held_out_retrieval_i2t@32", "held_out_caption_vs_wrong_category", "probe_cell_category_accuracy",
                "probe_cell_color_accuracy", "word_probe_accuracy", "word_probe_accuracy_objects",
                "patch_word_accuracy", "patch_color_accuracy"):
        assert 0 <= metrics[key] <= 1, key
    assert record["word_space"].startswith("SmolLM2-135M-Instruct:") and record["tower"]["word_weight"] == 1.0

    model = CLIPVisionModel.from_pretrained(tmp_path / "a")
    processor = AutoImageProcessor.from_pretrained(tmp_path / "a")
    assert model.config.model_type == "clip_vision_model"
    assert (model.config.image_size, model.config.patch_size, model.config.hidden_size) == (64, 16, 64)
    config = json.loads((tmp_path / "a" / "preprocessor_config.json").read_text())
    assert config["image_processor_type"] == "CLIPImageProcessor" and config["crop_size"] == {"height": 64, "width": 64}
    image = Image.open(world / "images" / "pope_000041.png")
    pixels = processor(images=image, return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 64, 64)
    with torch.no_grad():
        out = model(pixel_values=pixels, output_hidden_states=True)
    assert out.last_hidden_state.shape == (1, 17, 64)  # CLS + 4x4 patches
    assert len(out.hidden_states) == 3
    # the patch tokens the projector reads come at the scale of SmolLM2's input embeddings
    from lntune.world.word_space import embedded_word_space

    target = embedded_word_space(["ball"], ["red"]).token_norm
    images = [Image.open(p).convert("RGB") for p in sorted((world / "images").glob("train_*.png"))]
    with torch.no_grad():
        tokens = model(pixel_values=processor(images=images, return_tensors="pt")["pixel_values"],
                       output_hidden_states=True).hidden_states[-1][:, 1:]
    assert float(tokens.norm(dim=-1).mean()) == pytest.approx(target, rel=1e-3)

    train_tower(world, tmp_path / "b", "contrastive", seed=0, steps=3, progress=False, threads=1)
    again = CLIPVisionModel.from_pretrained(tmp_path / "b").state_dict()
    assert all(torch.equal(t, again[k]) for k, t in model.state_dict().items())
    train_tower(world, tmp_path / "c", "contrastive", seed=1, steps=3, progress=False, threads=1)
    other = CLIPVisionModel.from_pretrained(tmp_path / "c").state_dict()
    assert not torch.equal(other["embeddings.patch_embedding.weight"], again["embeddings.patch_embedding.weight"])


def test_classification_tower_and_caching(world, tmp_path, monkeypatch, capsys):
    from transformers import CLIPVisionModel

    out, trained = train_tower_atomic(world, tmp_path / "t", "classification", seed=0, steps=2, progress=False,
                                      threads=1)
    assert trained and CLIPVisionModel.from_pretrained(out).config.num_hidden_layers == 2
    metrics = json.loads((out / "tower.json").read_text())["metrics"]
    assert 0 <= metrics["held_out_category_f1"] <= 1 and 0 <= metrics["held_out_cell_category_accuracy"] <= 1
    assert "held_out_retrieval_i2t@32" not in metrics
    assert train_tower_atomic(world, out, "classification", seed=0, steps=2, progress=False) == (out, False)
    with pytest.raises(LntuneError, match="already exists"):
        train_tower_atomic(world, out, "contrastive", seed=0, steps=2, progress=False)

    assert cli_main(["world", "vision", "--world", str(world), "--out", str(out), "--objective", "classification",
                     "--steps", "2", "--threads", "1", "--quiet"]) == 0
    assert "already up to date" in capsys.readouterr().out

    from lntune.world.cache import ensure_vision_tower, ensure_world

    from lntune.paths import lntune_home

    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "models").symlink_to(lntune_home() / "models")  # the converted embedded LLM
    monkeypatch.setenv("LNTUNE_HOME", str(tmp_path / "home"))
    cached = ensure_world("smoke", seed=0, progress=False)
    assert cached.parent == tmp_path / "home" / "worlds" and cached.name.startswith("smoke-s0-v")
    assert (cached / "world.json").read_bytes() == (world / "world.json").read_bytes()
    assert ensure_world("smoke", seed=0) == cached
    tower = ensure_vision_tower(cached, "contrastive", seed=0, progress=False, threads=1)
    assert tower.parent == tmp_path / "home" / "towers" and "-contrastive-s0-v" in tower.name
    stamp = (tower / "model.safetensors").stat().st_mtime_ns
    assert ensure_vision_tower(cached, "contrastive", seed=0) == tower
    assert (tower / "model.safetensors").stat().st_mtime_ns == stamp
    assert not [p for p in (tmp_path / "home" / "towers").iterdir() if p.name.startswith(".")]


def test_bad_objective_is_a_one_line_error(world, tmp_path):
    with pytest.raises(LntuneError, match="unknown vision objective 'imagenet'"):
        train_tower(world, tmp_path / "x", "imagenet")
