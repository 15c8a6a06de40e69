"""Vision towers that ship with lntune, pretrained on a built-in world, so that the quickstart need not train one.

lntune/world/pretrained/ holds the quick world's contrastive tower (seed 0) as `lntune world vision` writes it. It is
used only where its tower.json records exactly the settings and the world (sha256 of world.json) that a run asks
for, the same test the tower cache applies (vision_tower.tower_is_current); any other world, objective, seed or
tower version trains its own. After a change to the quick world or to tower training, refresh it with

    lntune world vision --world "$(python -c 'from lntune.world.cache import ensure_world; print(ensure_world("quick"))')" \
        --out lntune/world/pretrained/quick-contrastive-s0 --force

(tests/test_world_shipped_tower.py fails until it is refreshed).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from lntune.locks import hold_lock, replace_folder
from lntune.world.generate import load_world
from lntune.world.vision_tower import tower_is_current, tower_settings, world_fingerprint

SHIPPED_TOWERS = Path(__file__).parent / "pretrained"
SHIPPED_MARK = "shipped"
"""tower.json key set on a cached copy of a shipped tower, so that a run asking for its own training replaces it."""


def shipped_tower(world_dir, objective: str = "contrastive", seed: int = 0, folder: Path | None = None) -> Path | None:
    """The shipped tower (in `folder`, default SHIPPED_TOWERS) trained with exactly these settings on exactly this
    world, or None."""
    folder = Path(folder or SHIPPED_TOWERS)
    if not folder.is_dir():
        return None
    settings = tower_settings(load_world(world_dir), objective, seed)
    fingerprint = world_fingerprint(world_dir)
    for candidate in sorted(folder.iterdir()):
        if tower_is_current(candidate, settings, fingerprint):
            return candidate
    return None


def is_shipped_copy(tower_dir) -> bool:
    path = Path(tower_dir) / "tower.json"
    try:
        return bool(json.loads(path.read_text(encoding="utf-8")).get(SHIPPED_MARK))
    except (OSError, json.JSONDecodeError):
        return False


def install_shipped_tower(shipped: Path, out: Path) -> Path:
    """Copy a shipped tower to `out` (atomically, under `out`'s lock), its tower.json marked as a shipped copy."""

    def copy(tmp: Path):
        shutil.copytree(shipped, tmp)
        record = json.loads((tmp / "tower.json").read_text(encoding="utf-8"))
        record[SHIPPED_MARK] = True
        (tmp / "tower.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with hold_lock(out, "vision tower", inside=False):
        replace_folder(out, copy)
    return out
