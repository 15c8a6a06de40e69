"""Generate the synthetic world: images, ground truth, training data and benchmark files, all in official formats.

    lntune world generate --out worlds/quick --preset quick --seed 0
    python -c "from lntune.world.generate import generate_world; generate_world('/tmp/w', 'smoke')"

The output is byte-identical for a given (preset, seed, WORLD_VERSION). Layout (image paths are relative
to DIR/images/; see docs/world.md):

    world.json                       ground truth: every image's split, pool, objects; statistics
    images/*.png                     train_*.png for training, <benchmark>_*.png for evaluation
    pretrain.json                    stage-1 caption pairs (LLaVA pretrain format)
    instruct/{conversation,detail,complex_reasoning,vqa,mixed,paper_mix}.json   LLaVA-Instruct format
    eval/pope/coco_pope_{random,popular,adversarial}.json
    eval/mme/{existence,count,position,color}/*.png + *.txt
    eval/vqav2/{questions,annotations}.json
    eval/coco/dataset_coco.json, eval/flickr30k/dataset_flickr30k.json   Karpathy splits

Evaluation images never appear in training files: each benchmark draws scenes from its own pool.
"""

from __future__ import annotations

import io
import json
import math
import random
from dataclasses import asdict
from pathlib import Path

from lntune.data.records import INSTRUCT_TYPES
from lntune.errors import LntuneError
from lntune.locks import hold_lock
from lntune.ownership import replace_owned_folder

WORLD = "world"  # the kind of folder generate_world writes (lntune/ownership.py)
from lntune.world import benchmarks, instruct
from lntune.world.presets import WorldPreset, get_preset
from lntune.world.render import render_scene
from lntune.world.scenes import (BACKGROUNDS, CATEGORIES, COLORS, SIZES, THEMES, Scene, by_frequency,
                                 category_statistics, position_names, sample_scene)

WORLD_VERSION = 6
"""Bump whenever the generated files change for the same preset and seed (cache keys include it)."""

WORLD_INSTRUCT_TYPES = INSTRUCT_TYPES + ("vqa",)
"""The paper's three LLaVA-Instruct types, plus short-answer VQA (as in LLaVA-1.5's mix)."""

PAPER_MIX_TYPES = ("conversation", "complex_reasoning")
"""instruct/paper_mix.json: the paper's stage-2 data in miniature. LLaVA-Instruct-80K, which the paper trains on,
holds conversation and complex-reasoning samples in equal numbers (40K each, subsampled from LLaVA-Instruct-150K);
the world's mix takes every sample of both files."""


def _rng(seed: int, *names: str) -> random.Random:
    # One independent stream per purpose: changing one file's generator leaves the others unchanged.
    return random.Random("lntune-world/" + "/".join([str(seed), *names]))


def _pool_sizes(p: WorldPreset) -> dict[str, int]:
    sizes = {"train": p.train_images, "pope": p.pope_images}
    sizes.update({f"mme/{t}": p.mme_images for t in benchmarks.MME_TASKS})
    sizes["vqav2"] = math.ceil(p.vqav2_questions / 3)
    sizes["coco"] = sizes["flickr30k"] = p.karpathy_val + p.karpathy_test
    return sizes


def _accepts(pool: str, scene: Scene, rng: random.Random) -> bool:
    if pool == "pope":
        return len(scene.categories()) >= 3
    if pool.startswith("mme/"):
        task = pool.split("/")[1]
        if not benchmarks.mme_accepts(task, scene):
            return False
        if task == "count" and rng.random() < 0.6:  # most count images have a repeated category
            return max(scene.count(c) for c in scene.categories()) >= 2
    return True


def build_scenes(p: WorldPreset, seed: int) -> dict[str, list[Scene]]:
    """Every pool's scenes; image ids are global and sequential, file names say the pool."""
    pools: dict[str, list[Scene]] = {}
    image_id = 0
    for pool, n in _pool_sizes(p).items():
        rng = _rng(seed, "scenes", pool)
        prefix = pool.split("/")[0]
        scenes = []
        while len(scenes) < n:
            scene = sample_scene(rng, p.grid, p.image_size, p.max_objects)
            if _accepts(pool, scene, rng):
                image_id += 1
                scene.image_id, scene.pool, scene.file = image_id, pool, f"{prefix}_{image_id:06d}.png"
                scenes.append(scene)
        pools[pool] = scenes
    return pools


def _write_json(path: Path, obj, lines: bool = False):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        if lines:
            for row in obj:
                f.write(json.dumps(row) + "\n")
        else:
            json.dump(obj, f, indent=1)
            f.write("\n")


def _png_bytes(scene: Scene, image_size: int) -> bytes:
    buf = io.BytesIO()
    render_scene(scene, image_size).save(buf, format="PNG")
    return buf.getvalue()


def _cycle_sample(scenes: list[Scene], n: int, rng: random.Random) -> list[Scene]:
    """n scenes, each training image used once before any is used twice."""
    out: list[Scene] = []
    while len(out) < n:
        batch = list(scenes)
        rng.shuffle(batch)
        out.extend(batch[: n - len(out)])
    return out


def _write_all(out: Path, p: WorldPreset, seed: int, progress: bool):
    from tqdm import tqdm

    pools = build_scenes(p, seed)
    train = pools["train"]
    statistics = category_statistics(train)
    grid = p.grid

    # Images (MME's also beside their question files, as in MME's release).
    (out / "images").mkdir(parents=True)
    every = [s for scenes in pools.values() for s in scenes]
    for scene in tqdm(every, desc="rendering", unit="img", disable=not progress):
        data = _png_bytes(scene, p.image_size)
        (out / "images" / scene.file).write_bytes(data)
        if scene.pool.startswith("mme/"):
            folder = out / "eval" / scene.pool
            folder.mkdir(parents=True, exist_ok=True)
            (folder / scene.file).write_bytes(data)

    _write_json(out / "world.json", {
        "version": WORLD_VERSION,
        "seed": seed,
        "preset": asdict(p),
        "categories": list(CATEGORIES),
        "colors": list(COLORS),
        "sizes": list(SIZES),
        "positions": position_names(grid),
        "backgrounds": list(BACKGROUNDS),
        "themes": {k: {"weight": w, "categories": cats, "background": bg} for k, (w, cats, bg) in THEMES.items()},
        "statistics": {"computed_on": "train", **statistics,
                       "popular_order": by_frequency(statistics["category_counts"])},
        "images": [s.to_json() for s in every],
    })

    rng = _rng(seed, "pretrain")
    _write_json(out / "pretrain.json",
                [instruct.pretrain_sample(f"{s.image_id:06d}", s, rng) for s in train])

    typed = {}
    for kind, prefix in zip(WORLD_INSTRUCT_TYPES, ("conv", "detail", "reason", "vqa")):
        rng = _rng(seed, "instruct", kind)
        scenes = _cycle_sample(train, p.vqa_samples if kind == "vqa" else p.instruct_per_type, rng)
        if kind == "conversation":
            answers = instruct.AlternatingAnswers()
            samples = [instruct.conversation_sample(f"{prefix}-{k:06d}", s, rng, grid, answers)
                       for k, s in enumerate(scenes)]
        elif kind == "vqa":
            answers = instruct.AlternatingAnswers()
            samples = [instruct.vqa_sample(f"{prefix}-{k:06d}", s, rng, grid, answers) for k, s in enumerate(scenes)]
        elif kind == "detail":
            samples = [instruct.detail_sample(f"{prefix}-{k:06d}", s, rng) for k, s in enumerate(scenes)]
        else:
            samples = [instruct.complex_sample(f"{prefix}-{k:06d}", s, rng) for k, s in enumerate(scenes)]
        typed[kind] = samples
        _write_json(out / "instruct" / f"{kind}.json", samples)
    mixed = [s for kind in WORLD_INSTRUCT_TYPES for s in typed[kind]]
    _rng(seed, "instruct", "mixed").shuffle(mixed)
    _write_json(out / "instruct" / "mixed.json", mixed)
    paper_mix = [s for kind in PAPER_MIX_TYPES for s in typed[kind]]
    _rng(seed, "instruct", "paper_mix").shuffle(paper_mix)
    _write_json(out / "instruct" / "paper_mix.json", paper_mix)

    for split in benchmarks.POPE_SPLITS:
        rows = benchmarks.pope_questions(pools["pope"], split, statistics, _rng(seed, "pope", split))
        _write_json(out / "eval" / "pope" / f"coco_pope_{split}.json", rows, lines=True)

    for task in benchmarks.MME_TASKS:
        rng = _rng(seed, "mme", task)
        for scene in pools[f"mme/{task}"]:
            lines = "".join(f"{q}\t{a}\n" for q, a in benchmarks.mme_pair(task, scene, rng))
            (out / "eval" / "mme" / task / scene.file.replace(".png", ".txt")).write_text(lines, encoding="utf-8")

    questions, annotations = benchmarks.vqav2_files(pools["vqav2"], p.vqav2_questions, _rng(seed, "vqav2"), grid)
    _write_json(out / "eval" / "vqav2" / "questions.json", questions)
    _write_json(out / "eval" / "vqav2" / "annotations.json", annotations)

    for style, folder in (("coco", "coco"), ("flickr", "flickr30k")):
        rng = _rng(seed, "karpathy", style)
        train_part = sorted(rng.sample(train, p.karpathy_train), key=lambda s: s.image_id)
        held_out = pools[folder]
        entries = ([(s, "train") for s in train_part] + [(s, "val") for s in held_out[: p.karpathy_val]]
                   + [(s, "test") for s in held_out[p.karpathy_val:]])
        _write_json(out / "eval" / folder / f"dataset_{folder}.json", benchmarks.karpathy_file(entries, style, rng))


def generate_world(out, preset: str = "quick", seed: int = 0, progress: bool = True) -> Path:
    """Write the world for (preset, seed) into `out`, which must not exist or be empty.

    The files are written into a temporary sibling directory that is renamed to `out` at the end, so an
    interrupted run never leaves a half-written world behind.
    """
    p = get_preset(preset)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LntuneError(f"{out}: already exists and is not empty; choose another --out or pass --force")
    out.parent.mkdir(parents=True, exist_ok=True)
    with hold_lock(out, "world", inside=False):
        if (out / "world.json").is_file():  # finished by the process that held the lock before us
            return out
        replace_owned_folder(out, WORLD, lambda tmp: _write_all(tmp, p, seed, progress))
    return out


def load_world(world_dir) -> dict:
    """world.json of a generated world, with a clear error when it is missing or from another version."""
    path = Path(world_dir) / "world.json"
    if not path.is_file():
        raise LntuneError(f"{path}: not found; generate a world with `lntune world generate --out DIR`")
    try:
        world = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise LntuneError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None
    for key in ("version", "preset", "images", "categories", "colors", "positions"):
        if key not in world:
            raise LntuneError(f"{path}: missing key {key!r}; regenerate the world")
    return world
