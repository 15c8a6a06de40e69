"""Named presets, kept as data: one YAML file per kind under lntune/configs/presets/, one loader, one error.

    from lntune.presets import preset, preset_names
    preset("world", "quick")              # the preset's mapping, as written in configs/presets/world.yaml
    preset_names("quickstart")            # ('smoke', 'quick')

Kinds: world (the synthetic world's sizes and its vision tower), quickstart, reproduce, params (model shapes
counted on the meta device by `lntune params`). Each file holds `presets: {name: {...}}`; an optional
`defaults:` section holds YAML anchors the presets merge (`<<: *name`) and is not itself a preset. A kind whose
presets are built in Python (the bench's) passes its own table to `preset`, so every unknown name reads alike:

    unknown world preset 'huge'; choose one of: smoke, quick, full
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import yaml

from lntune.errors import LntuneError

PRESET_ROOT = Path(__file__).resolve().parent / "configs" / "presets"


@functools.cache
def _load(kind: str) -> dict:
    path = PRESET_ROOT / f"{kind}.yaml"
    if not path.is_file():
        raise LntuneError(f"{path}: no presets of kind {kind!r}")
    data = yaml.safe_load(path.read_text()) or {}
    presets = data.get("presets")
    if not isinstance(presets, dict) or not presets:
        raise LntuneError(f"{path}: expected a `presets:` mapping of names to settings")
    return presets


def preset_names(kind: str) -> tuple[str, ...]:
    """The names of the presets of `kind`, in the file's order."""
    return tuple(_load(kind))


def check_name(kind: str, name: str, names) -> None:
    """LntuneError naming the known presets when `name` is not one of `names`."""
    if name not in names:
        raise LntuneError(f"unknown {kind} preset {name!r}; choose one of: {', '.join(names)}")


def preset(kind: str, name: str, table: dict | None = None):
    """The settings of preset `name` of `kind` (a fresh copy), from its YAML file or from `table`."""
    source = _load(kind) if table is None else table
    check_name(kind, name, tuple(source))
    return copy.deepcopy(source[name]) if table is None else source[name]
