"""Pretrain the world's small vision tower: a Hugging Face `CLIPVisionModel` trained from scratch on the
world's TRAINING images only, with one of the two objectives in tower_objectives.py ("contrastive":
language-aligned like CLIP, the paper's main setting; "classification": object labels only, like an
ImageNet ViT, the paper's Table 5 ablation).

The output directory holds the vision model (safetensors), a `CLIPImageProcessor` for the world's
resolution, and tower.json (settings, fingerprint of the world, held-out metrics). Plain transformers
loads it: `CLIPVisionModel.from_pretrained(dir)`, `AutoImageProcessor.from_pretrained(dir)`.

    lntune world vision --world worlds/quick --out towers/quick-contrastive --objective contrastive
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
from dataclasses import asdict, replace
from pathlib import Path

from lntune.errors import LntuneError
from lntune.locks import hold_lock, replace_folder
from lntune.world.generate import load_world
from lntune.world.presets import PRESETS, TowerPreset
from lntune.world.scenes import Scene
from lntune.world.patch_words import PatchWords, patch_targets
from lntune.world.tower_objectives import PATCH_LAYER, Classification, Contrastive
from lntune.world.tower_scale import match_token_norm, patch_tokens
from lntune.world.word_space import embedded_word_space, world_words

TOWER_VERSION = 4
"""Bump whenever training changes for the same world, objective and seed (cache keys include it)."""

OBJECTIVES = ("contrastive", "classification")
HELD_OUT_IMAGES = 256


def world_fingerprint(world_dir) -> str:
    """sha256 of world.json: identifies a world's content (its images follow from it)."""
    return hashlib.sha256((Path(world_dir) / "world.json").read_bytes()).hexdigest()


def tower_settings(world: dict, objective: str, seed: int, steps: int | None = None) -> dict:
    """Everything that determines the trained tower (stored in tower.json, compared for caching)."""
    if objective not in OBJECTIVES:
        raise LntuneError(f"unknown vision objective {objective!r}; choose one of: {', '.join(OBJECTIVES)}")
    name = world["preset"].get("name")
    tower = PRESETS[name].tower if name in PRESETS else TowerPreset(**world["preset"].get("tower", {}))
    if steps is not None:
        tower = replace(tower, steps=steps)
    settings = {"version": TOWER_VERSION, "objective": objective, "seed": seed, "tower": asdict(tower),
                "image_size": world["preset"]["image_size"], "patch_size": world["preset"]["patch_size"]}
    # The word targets and the output scale come from the embedded LLM: record which one (name + hash).
    settings["word_space"] = embedded_word_space(*world_words(world)).llm
    return settings


def image_processor(image_size: int):
    """CLIP's preprocessing (bicubic resize, centre crop, CLIP mean/std) at the world's resolution. The PIL
    backend needs no torchvision; it saves as a plain "CLIPImageProcessor" config."""
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})


def _pixels(world_dir: Path, scenes: list[Scene], processor):
    import torch
    from PIL import Image

    images = []
    for s in scenes:
        path = world_dir / "images" / s.file
        if not path.is_file():
            raise LntuneError(f"{path}: image listed in world.json is missing")
        with Image.open(path) as im:
            images.append(im.convert("RGB"))
    out = []
    for k in range(0, len(images), 256):
        out.append(processor(images=images[k:k + 256], return_tensors="pt")["pixel_values"])
    return torch.cat(out)


def _lr_at(step: int, t: TowerPreset) -> float:
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
    return t.lr * 0.5 * (1 + math.cos(math.pi * progress))


def _vision_config(settings: dict):
    from transformers import CLIPVisionConfig

    t = settings["tower"]
    return CLIPVisionConfig(hidden_size=t["hidden_size"], intermediate_size=4 * t["hidden_size"],
                            num_hidden_layers=t["num_layers"], num_attention_heads=t["num_heads"],
                            image_size=settings["image_size"], patch_size=settings["patch_size"],
                            projection_dim=t["projection_dim"])


def train_tower(world_dir, out, objective: str = "contrastive", seed: int = 0, steps: int | None = None,
                progress: bool = True, threads: int | None = None) -> dict:
    """Train the tower and save it into `out` (created; must not exist). Returns tower.json's content.

    `threads` defaults to os.cpu_count(); on a machine shared with other jobs, 1 can be several times faster.
    """
    import torch
    from tqdm import tqdm
    from transformers.utils import logging as hf_logging

    world_dir, out = Path(world_dir), Path(out)
    world = load_world(world_dir)
    settings = tower_settings(world, objective, seed, steps)
    t = TowerPreset(**settings["tower"])
    torch.set_num_threads(threads or os.cpu_count() or 1)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)

    train = [Scene.from_json(e) for e in world["images"] if e["split"] == "train"]
    held = [Scene.from_json(e) for e in world["images"] if e["split"] == "eval"]
    held = random.Random(f"lntune-tower-heldout/{seed}").sample(held, min(HELD_OUT_IMAGES, len(held)))
    if not train:
        raise LntuneError(f"{world_dir / 'world.json'}: no training images")
    processor = image_processor(settings["image_size"])
    pixels, held_pixels = _pixels(world_dir, train, processor), _pixels(world_dir, held, processor)
    words = embedded_word_space(*world_words(world))
    geometry = (settings["image_size"], settings["patch_size"])
    train_targets, held_targets = patch_targets(train, world, *geometry), patch_targets(held, world, *geometry)
    patch_words = None
    if objective == "contrastive" and t.word_weight > 0:
        patch_words = PatchWords(t.hidden_size, words, *train_targets,
                                 cosine_weight=t.word_cosine_weight)
    if objective == "contrastive":
        task = Contrastive(train, held, pixels, _vision_config(settings), t, random.Random(f"lntune-tower/{seed}"),
                           patch_words=patch_words)
    else:
        task = Classification(train, held, pixels, _vision_config(settings), t, world)

    task.model.train()
    parameters = task.parameters()
    optimizer = torch.optim.AdamW(parameters, lr=t.lr, weight_decay=t.weight_decay)
    batch = min(t.batch_size, len(train))
    bar = tqdm(range(t.steps), desc=f"vision tower ({objective})", unit="step", disable=not progress)
    loss_value = float("nan")
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, t)
        loss = task.loss(torch.randperm(len(train), generator=gen)[:batch], gen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 1.0)
        optimizer.step()
        loss_value = loss.item()
        if step % 10 == 0 or step == t.steps - 1:
            bar.set_postfix(loss=f"{loss_value:.3f}")

    task.model.eval()
    metrics = {"final_loss": round(loss_value, 4), "train_images": len(train), "held_out_images": len(held)}
    with torch.no_grad():
        metrics.update(task.metrics(held_pixels))
    if patch_words is not None:
        with torch.no_grad():
            metrics.update(patch_words.accuracy(patch_tokens(task.vision, held_pixels, PATCH_LAYER),
                                                *held_targets))
    metrics["token_scale"] = round(match_token_norm(task.vision, pixels, words.token_norm, PATCH_LAYER), 6)
    metrics.update(probe(task.vision, pixels, train, held_pixels, held, world, seed))
    metrics.update(word_probe(task.vision, pixels, held_pixels, words, train_targets, held_targets))

    from lntune.train.finite import require_finite

    require_finite(task.vision.state_dict(), out)  # a diverged tower is never cached
    out.mkdir(parents=True)
    bars = hf_logging.is_progress_bar_enabled()
    if not progress:
        hf_logging.disable_progress_bar()  # save_pretrained's own shard bar
    try:
        task.vision.save_pretrained(out)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    processor.save_pretrained(out)
    record = {**settings, "world": world_fingerprint(world_dir), "world_preset": world["preset"].get("name"),
              "metrics": metrics}
    (out / "tower.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


def _cell_features(vision, pixels, grid: int):
    """What a LLaVA projector sees, per grid cell: the second-to-last layer's patch tokens (CLS dropped),
    averaged over the patches whose centre lies in the cell. Shape (images, cells, hidden)."""
    import torch

    side = vision.config.image_size // vision.config.patch_size
    cell_of = [int((k + 0.5) * grid / side) for k in range(side)]
    assign = torch.zeros(grid * grid, side * side)
    for i in range(side):
        for j in range(side):
            assign[cell_of[i] * grid + cell_of[j], i * side + j] = 1.0
    assign /= assign.sum(1, keepdim=True)
    feats = []
    with torch.no_grad():
        for k in range(0, len(pixels), 256):
            hidden = vision(pixel_values=pixels[k:k + 256], output_hidden_states=True).hidden_states[-2]
            feats.append(torch.einsum("cp,bph->bch", assign, hidden[:, 1:]))
    return torch.cat(feats)


def probe(vision, pixels, train, held_pixels, held, world, seed, steps: int = 200) -> dict:
    """Linear probe on frozen features: one classifier, shared by all grid cells, says from a cell's
    features which category is there (or nothing) and its colour. Trained on the training images, scored
    on held-out ones; comparable across objectives, it says how much a projector could read from a tower."""
    import torch

    cats, colors, positions = world["categories"], world["colors"], world["positions"]
    grid = int(round(len(positions) ** 0.5))

    def targets(scenes):
        cat = torch.full((len(scenes), len(positions)), len(cats), dtype=torch.long)  # last class: empty
        col = torch.full((len(scenes), len(positions)), -100, dtype=torch.long)
        for i, s in enumerate(scenes):
            for o in s.objects:
                cell = o.cell[0] * grid + o.cell[1]
                cat[i, cell] = cats.index(o.category)
                col[i, cell] = colors.index(o.color)
        return cat.flatten(), col.flatten()

    x, hx = _cell_features(vision, pixels, grid), _cell_features(vision, held_pixels, grid)
    x, hx = x.flatten(0, 1), hx.flatten(0, 1)
    mean, std = x.mean(0), x.std(0) + 1e-5
    x, hx = (x - mean) / std, (hx - mean) / std
    cat, col = targets(train)
    hcat, hcol = targets(held)
    torch.manual_seed(seed)
    n_cat = len(cats) + 1
    layer = torch.nn.Linear(x.shape[1], n_cat + len(colors))
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    ce = torch.nn.functional.cross_entropy
    with torch.enable_grad():
        for _ in range(steps):
            logits = layer(x)
            loss = ce(logits[:, :n_cat], cat) + ce(logits[:, n_cat:], col)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        logits = layer(hx)
        filled = hcol != -100
        cat_acc = (logits[:, :n_cat].argmax(-1) == hcat).float().mean()
        col_acc = (logits[:, n_cat:].argmax(-1) == hcol)[filled].float().mean()
    return {"probe_cell_category_accuracy": round(float(cat_acc), 4),
            "probe_cell_color_accuracy": round(float(col_acc), 4)}


def word_probe(vision, pixels, held_pixels, words, train_targets, held_targets) -> dict:
    """Can a linear projector turn this tower's patch tokens into the LLM's words? A least-squares linear map
    from training patch tokens to the LLM input embedding of each patch's content word, scored on held-out
    patches by whether the nearest content word (cosine) is the right one: over all patches, and over the
    patches that show an object (chance there is about 1 in 22: a category or a colour)."""
    import torch
    import torch.nn.functional as F

    def with_bias(x):
        x = x.flatten(0, 1)
        return torch.cat([x, torch.ones(len(x), 1)], dim=1)

    x = with_bias(patch_tokens(vision, pixels, PATCH_LAYER))
    hx = with_bias(patch_tokens(vision, held_pixels, PATCH_LAYER))
    content, _ = train_targets
    held_content, held_color = held_targets
    mapping = torch.linalg.lstsq(x, words.content[content.flatten()], driver="gelsd").solution
    nearest = (F.normalize(hx @ mapping, dim=-1) @ F.normalize(words.content, dim=-1).T).argmax(-1)
    hit = nearest == held_content.flatten()
    objects = held_color.flatten() != -100
    return {"word_probe_accuracy": round(float(hit.float().mean()), 4),
            "word_probe_accuracy_objects": round(float(hit[objects].float().mean()), 4)}


def tower_is_current(out, settings: dict, fingerprint: str) -> bool:
    """Whether `out` already holds a finished tower trained with these settings on this world."""
    path = Path(out) / "tower.json"
    if not path.is_file():
        return False
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return False
    return record.get("world") == fingerprint and all(record.get(k) == v for k, v in settings.items())


def train_tower_atomic(world_dir, out, objective="contrastive", seed=0, steps=None, progress=True,
                       force=False, threads=None, retrain=False) -> tuple[Path, bool]:
    """Train into a temporary sibling and rename it to `out`. Returns (out, trained); trained is False when
    `out` already held the same tower (unless `retrain`). A different existing tower is replaced only with
    force=True."""
    out = Path(out)
    world = load_world(world_dir)
    settings = tower_settings(world, objective, seed, steps)
    if not retrain and tower_is_current(out, settings, world_fingerprint(world_dir)):
        return out, False
    if out.exists() and any(out.iterdir()) and not (force and (out / "tower.json").is_file()):
        raise LntuneError(f"{out}: already exists and holds something else; choose another --out"
                          + (" (--force only replaces a vision tower directory)" if force else " or pass --force"))
    out.parent.mkdir(parents=True, exist_ok=True)
    with hold_lock(out, "vision tower", inside=False):
        if not retrain and tower_is_current(out, settings, world_fingerprint(world_dir)):  # built while we waited
            return out, False
        replace_folder(out, lambda tmp: train_tower(world_dir, tmp, objective=objective, seed=seed, steps=steps,
                                                    progress=progress, threads=threads))
    return out, True
