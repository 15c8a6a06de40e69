"""Cached worlds and vision towers under lntune_home() ($LNTUNE_HOME, default ~/.cache/lntune).

    from lntune.world.cache import ensure_world, ensure_vision_tower
    world = ensure_world("quick", seed=0)          # lntune_home()/worlds/quick-s0-v<WORLD_VERSION>/
    tower = ensure_vision_tower(world)             # lntune_home()/towers/<preset>-<world hash>-contrastive-s0-v<TOWER_VERSION>/

Both are built once, into a temporary directory renamed into place when complete, so a crash or a
concurrent run never leaves a half-written entry that later runs would trust.
"""

from __future__ import annotations

from pathlib import Path

from lntune.paths import lntune_home
from lntune.world.generate import WORLD_VERSION, generate_world, load_world
from lntune.world.presets import get_preset
from lntune.world.vision_tower import TOWER_VERSION, train_tower_atomic, world_fingerprint


def world_cache_dir(preset: str = "quick", seed: int = 0) -> Path:
    return lntune_home() / "worlds" / f"{preset}-s{seed}-v{WORLD_VERSION}"


def ensure_world(preset: str = "quick", seed: int = 0, progress: bool = True) -> Path:
    """The cached world for (preset, seed), generated on first use."""
    get_preset(preset)  # a clear error for unknown names
    path = world_cache_dir(preset, seed)
    if (path / "world.json").is_file():
        return path
    try:
        return generate_world(path, preset=preset, seed=seed, progress=progress)
    except OSError:
        if (path / "world.json").is_file():  # another process finished first
            return path
        raise


def prepare_world(config, progress: bool = True) -> dict:
    """{"world": folder, "tower": folder} for the `${world}`/`${tower}` a run config uses (lntune.config), each
    generated or trained (once, cached) when missing: the step before `lntune.config.resolve_paths`."""
    from lntune.config import placeholders, require_world_section

    used = placeholders(config)
    require_world_section(config)
    if not used & {"world", "tower"}:
        return {}
    world = ensure_world(config.world.preset, config.world.seed, progress=progress)
    if "tower" not in used:
        return {"world": world}
    return {"world": world, "tower": ensure_vision_tower(world, config.world.vision_objective, config.world.seed,
                                                         progress=progress)}


def tower_cache_dir(world_dir, objective: str = "contrastive", seed: int = 0) -> Path:
    world = load_world(world_dir)
    name = world["preset"].get("name", "custom")
    return lntune_home() / "towers" / (
        f"{name}-{world_fingerprint(world_dir)[:12]}-{objective}-s{seed}-v{TOWER_VERSION}")


def ensure_vision_tower(world_dir, objective: str = "contrastive", seed: int = 0, progress: bool = True,
                        threads: int | None = None, pretrained: bool = True) -> Path:
    """The cached vision tower for this world (by content), objective and seed. On first use it is copied from
    the tower lntune ships for exactly this world and these settings (shipped_tower.py; `pretrained=False` trains
    one here instead, replacing a cached shipped copy), or else trained (with `threads` torch threads, default all
    cores). Load it with `CLIPVisionModel.from_pretrained(path)` and `AutoImageProcessor.from_pretrained(path)`."""
    from lntune.world.shipped_tower import install_shipped_tower, is_shipped_copy, shipped_tower
    from lntune.world.vision_tower import tower_is_current, tower_settings

    path = tower_cache_dir(world_dir, objective, seed)
    shipped = shipped_tower(world_dir, objective, seed) if pretrained else None
    cached = tower_is_current(path, tower_settings(load_world(world_dir), objective, seed), world_fingerprint(world_dir))
    try:
        if shipped is not None and not cached:
            if progress:
                print(f"vision tower: the one lntune ships for this world ({shipped.name}); "
                      "`lntune quickstart --train-tower` trains it here instead")
            install_shipped_tower(shipped, path)
        else:
            train_tower_atomic(world_dir, path, objective=objective, seed=seed, progress=progress, force=True,
                               threads=threads, retrain=not pretrained and is_shipped_copy(path))
    except OSError:
        if not (path / "tower.json").is_file():
            raise
    return path
