"""Fingerprints of what produced a result: a model's weights, data files, a training stage's inputs.

A cached result (a finished training run, an evaluation folder) records the fingerprint of its inputs, so a
later run can tell "done with these inputs" from "done with something else" (see docs/reliability.md).

- `model_fingerprint(dir)`: for an lntune run, the SHA-256 of its `trainable.safetensors` plus its base
  (recursively for a base run); for a plain Hugging Face directory, the names, sizes and modification times
  of its weight and config files (hashing many GB on every call would cost minutes);
- `tree_fingerprint(dir)`: names, sizes and modification times of every file below a folder;
- `stage_inputs(config)`: what a training stage depends on: its config (bookkeeping keys left out), its
  base model's fingerprint and the SHA-256 of its data file.

    python -c "from lntune.fingerprint import model_fingerprint; print(model_fingerprint('runs/x'))"
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

# Keys that change how a run is kept or shown, not what it computes: a resume may change them.
BOOKKEEPING = {"output_dir", "train.save_steps", "train.save_total_limit", "train.log_steps", "data.num_workers",
               "train.compile", "train.gradient_checkpointing", "train.track_grads"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf", ".json", ".model")


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def tree_fingerprint(folder: Path, suffixes: tuple[str, ...] | None = None) -> str:
    """Names, sizes and mtimes of the files below `folder` (only those ending in `suffixes` when given)."""
    folder = Path(folder)
    if folder.is_file():
        stat = folder.stat()
        return _hash([folder.name, stat.st_size, stat.st_mtime_ns])
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if suffixes is None or path.name.endswith(suffixes):
            stat = path.stat()
            entries.append([str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns])
    return _hash(entries)


def model_fingerprint(model_dir) -> str:
    """What identifies a model's weights: content hash for lntune runs, file stats for HF directories."""
    from lntune.run_dir import RUN_FILE, TRAINABLE_FILE

    model_dir = Path(model_dir)
    run_file = model_dir / RUN_FILE
    if not run_file.is_file():
        return tree_fingerprint(model_dir, _WEIGHT_SUFFIXES) if model_dir.exists() else _hash(str(model_dir))
    from lntune.errors import LntuneError
    from lntune.jsonio import load_json

    meta = load_json(run_file, "an lntune run's description (base, strategy)")
    base = meta.get("base") if isinstance(meta, dict) else None
    if not isinstance(base, dict):
        raise LntuneError(f"{run_file}: no 'base' object")
    # A run/HF base is identified by its weights (base_weights below), not by where it lies: moving it changes nothing.
    parts = {"trainable": file_digest(model_dir / TRAINABLE_FILE) if (model_dir / TRAINABLE_FILE).is_file() else None,
             "base": {"kind": base.get("kind")} if base.get("kind") in ("run", "hf") else base}
    if base.get("kind") in ("run", "hf") and base.get("path"):
        from lntune.errors import LntuneError
        from lntune.run_refs import resolve_ref

        try:
            parts["base_weights"] = model_fingerprint(resolve_ref(base["path"], model_dir, "base model", run_file))
        except LntuneError:  # the base has gone: its reference is all there is
            parts["base"], parts["base_weights"] = base, None
    return _hash(parts)


def flat_config(config_dict: dict, prefix: str = "") -> dict:
    """{'train.lr': 0.001, ...} from a nested config dict."""
    flat = {}
    for key, value in config_dict.items():
        if isinstance(value, dict):
            flat.update(flat_config(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def stage_inputs(config) -> dict:
    """The inputs of one training stage: config without bookkeeping keys, base model, data file."""
    flat = {k: v for k, v in flat_config(config.to_dict()).items() if k not in BOOKKEEPING}
    base = config.model.base
    data = Path(config.data.path)
    return {"config": flat,
            "base_weights": model_fingerprint(base) if base else None,
            "data_file": file_digest(data) if data.is_file() else None}


def first_difference(before: dict, now: dict) -> str | None:
    """'train.lr: 0.001 -> 0.002' for the first key whose value differs, or None."""
    for key in sorted(set(before) | set(now)):
        if before.get(key) != now.get(key):
            return f"{key}: {_short(before.get(key))} -> {_short(now.get(key))}"
    return None


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:16] + "..."


def stage_change(before: dict, now: dict) -> str | None:
    """How the inputs of a stage changed, in words, or None when they are the same."""
    before_config, now_config = dict(before.get("config", {})), dict(now.get("config", {}))
    if before.get("base_weights") and before.get("base_weights") == now.get("base_weights"):
        before_config.pop("model.base", None)  # the same base weights, found elsewhere: the base has moved
        now_config.pop("model.base", None)
    changed = first_difference(before_config, now_config)
    if changed:
        return changed
    if before.get("base_weights") != now.get("base_weights"):
        return "the weights of model.base changed"
    if before.get("data_file") != now.get("data_file"):
        return "the content of data.path changed"
    return None
