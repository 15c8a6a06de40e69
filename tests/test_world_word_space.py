"""The world tower's word-space pieces: patch targets, exact rescaling of a CLIP tower, the LLM's word vectors,
and the caption-alignment warm start of a linear projector.

    python -m pytest -q tests/test_world_word_space.py
"""

import pytest
import torch

from lntune.world.patch_words import patch_targets
from lntune.world.scenes import Scene, WorldObject
from lntune.world.tower_scale import match_token_norm, scale_hidden_states
from lntune.world.word_space import word_vectors
from tiny_models import make_tiny_run_inputs, tiny_tokenizer

WORLD = {"categories": ["ball", "tree"], "colors": ["red", "blue"], "backgrounds": ["plain", "grass"]}


def tiny_clip(seed=0):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    return CLIPVisionModel(CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                            num_attention_heads=2, image_size=32, patch_size=8)).eval()


def test_patch_targets_name_the_object_covering_each_patch_and_the_colour_of_a_wide_one():
    small = WorldObject("ball", "red", "small", "top left", (0, 0), (1, 1, 15, 15))  # inside patch (0, 0)
    large = WorldObject("tree", "blue", "large", "bottom right", (1, 1), (34, 34, 62, 62))  # patches (2..3, 2..3)
    scene = Scene(1, "a.png", "train", "park", "grass", [small, large])
    content, color = patch_targets([scene], WORLD, image_size=64, patch_size=16)
    grass, blue = 2 + WORLD["backgrounds"].index("grass"), 4 + WORLD["colors"].index("blue")
    # the large tree spans two columns: its left column names its colour ("blue tree" row by row)
    assert content[0].tolist() == [0, grass, grass, grass,
                                   grass, grass, grass, grass,
                                   grass, grass, blue, 1,
                                   grass, grass, blue, 1]
    assert color[0].tolist() == [0, -100, -100, -100,
                                 -100, -100, -100, -100,
                                 -100, -100, 1, 1,
                                 -100, -100, 1, 1]


def test_an_object_grazing_a_patch_does_not_name_it():
    grazing = WorldObject("ball", "red", "small", "top left", (0, 0), (14, 0, 28, 14))  # 2 of 16 px into patch 0
    content, _ = patch_targets([Scene(1, "a.png", "train", "park", "plain", [grazing])], WORLD, 64, 16)
    assert content[0, 0].item() == 2 and content[0, 1].item() == 0


def test_scaling_hidden_states_is_exact_for_every_layer():
    model = tiny_clip()
    pixels = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        before = model(pixel_values=pixels, output_hidden_states=True).hidden_states
        scale_hidden_states(model, 0.25)
        after = model(pixel_values=pixels, output_hidden_states=True).hidden_states
    for a, b in zip(before[1:], after[1:]):  # [0] is the raw embedding, before pre_layrnorm
        torch.testing.assert_close(b, 0.25 * a, rtol=1e-3, atol=1e-4)  # LayerNorm eps


def test_match_token_norm_hits_the_target_and_returns_the_factor():
    model = tiny_clip()
    pixels = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        norm = model(pixel_values=pixels, output_hidden_states=True).hidden_states[-1][:, 1:].norm(dim=-1).mean()
    factor = match_token_norm(model, pixels, target_norm=3.0)
    assert factor == pytest.approx(3.0 / float(norm), rel=1e-6)
    with torch.no_grad():
        now = model(pixel_values=pixels, output_hidden_states=True).hidden_states[-1][:, 1:].norm(dim=-1).mean()
    assert float(now) == pytest.approx(3.0, rel=1e-3)


def test_word_vectors_average_the_word_tokens():
    tok = tiny_tokenizer()
    table = torch.arange(len(tok) * 2, dtype=torch.float32).reshape(len(tok), 2)
    vectors = word_vectors(tok, table, ["red", "red ball"])
    red, ball = (tok.encode(w, add_special_tokens=False)[0] for w in ("red", "ball"))
    torch.testing.assert_close(vectors[0], table[red])
    torch.testing.assert_close(vectors[1], (table[red] + table[ball]) / 2)


def test_caption_alignment_puts_image_tokens_next_to_their_caption_words(tmp_path):
    import torch.nn.functional as F

    from lntune.data.records import load_records
    from lntune.model.build import build_mllm
    from lntune.model.projector_warmstart import align_projector

    inputs = make_tiny_run_inputs(tmp_path, samples=24)
    model, processor = build_mllm(inputs["model"]["llm"], inputs["model"]["vision"], projector="linear")
    records = load_records(inputs["data"]["path"])
    stats = align_projector(model, processor, records, inputs["data"]["image_folder"], steps=200, progress=False)
    assert stats["pairs"] == 24 and stats["steps"] == 200

    from lntune.data.images import load_image

    embeddings = model.get_input_embeddings().weight.detach()
    pixels = processor.image_processor(images=[load_image(inputs["data"]["image_folder"], r["image"]) for r in records],
                                       return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        features = model.model.vision_tower(pixel_values=pixels, output_hidden_states=True)
        tokens = model.model.multi_modal_projector(features.hidden_states[model.config.vision_feature_layer][:, 1:])
    assert float(tokens.norm(dim=-1).mean()) == pytest.approx(float(embeddings.norm(dim=-1).mean()), rel=1e-4)

    colors = ["red", "green", "blue"]
    word_rows = embeddings[[processor.tokenizer.encode(w, add_special_tokens=False)[0] for w in colors]]
    nearest = (F.normalize(tokens.mean(1), dim=-1) @ F.normalize(word_rows, dim=-1).T).argmax(-1)
    hits = sum(colors[int(k)] == r["conversations"][1]["value"] for k, r in zip(nearest, records))
    assert hits >= 20  # of 24 images, each a solid red, green or blue square captioned with its colour
