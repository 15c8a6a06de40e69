"""Evaluations pinned to their inputs: an eval folder's answers are only ever reused for the same model and data.

    with hold_lock(out, "evaluation"):
        pins = pin_evaluation(out, eval_inputs(model_dir, data_root, image_root, tasks), overwrite=False)
        ...load the model...
        record_pins(out, pins)                 # once the model has loaded
        ...generate and score...

OUT/eval_inputs.json records the model (its path and lntune/fingerprint.py's fingerprint of its weights) and, per
task, the benchmark files (a fingerprint of DATA_ROOT/<task>/) and the image folder. A later evaluation into
the same folder with another model, other benchmark files or another image folder is refused with one line
naming the difference; with `overwrite` the folder's evaluation outputs are deleted first and it starts
afresh (only the files an evaluation writes, in the folders its records list). The folder must be new, empty
or an evaluation's, and may not be the model, its base, the data or image root, or a folder above one of them
(lntune/ownership.py). Protocol, seed and decoding are pinned by the runner's eval_config.json the same way.
Adding tasks to a folder is allowed: each task's data is pinned when it is first evaluated.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lntune.errors import LntuneError
from lntune.eval.intervals import UNITS_DIR
from lntune.fingerprint import model_fingerprint, tree_fingerprint
from lntune.jsonio import load_json

INPUTS_FILE = "eval_inputs.json"
# What an evaluation writes into its folder (besides one sub-folder per task); --overwrite removes only these.
_OUTPUTS = ("eval_config.json", "metrics.json", "results.md", "timing.json", INPUTS_FILE)
_RESULT_SUFFIXES = (".json", ".jsonl", ".txt")  # what predictions/, units/ and the task folders hold
_LEGACY = ("eval_config.json", INPUTS_FILE, "metrics.json", "predictions")  # an evaluation from before the marker
EVALUATION = "evaluation"


def eval_inputs(model_dir, data_root, image_root, tasks) -> dict:
    """The inputs of an evaluation: the model's path and weights, each task's files, the image folder."""
    data_root = Path(data_root)
    images = str(Path(image_root).resolve()) if image_root else str((data_root.parent / "images").resolve())
    return {"model": {"path": str(Path(model_dir).resolve()), "weights": model_fingerprint(model_dir)},
            "data": {task: {"files": tree_fingerprint(data_root / task) if (data_root / task).exists() else None,
                            "root": str(data_root.resolve()), "images": images} for task in tasks}}


def pin_evaluation(out_dir, inputs: dict, overwrite: bool = False, how_to_restart: str = "pass --overwrite") -> dict:
    """The record to keep in OUT/inputs.json; LntuneError when the folder holds an evaluation of other inputs.

    Call while holding the folder's lock. `how_to_restart` is the advice in the refusal."""
    from lntune.ownership import claim_folder, model_inputs, refuse_overlap

    out_dir = Path(out_dir)
    for pinned in inputs["data"].values():
        if Path(pinned["root"]).is_relative_to(out_dir.resolve()):
            raise LntuneError(f"{out_dir}: holds the benchmark files (data root {pinned['root']}); write the "
                              "evaluation to another folder")
        refuse_overlap(out_dir, {"the image root": pinned["images"]})
    refuse_overlap(out_dir, model_inputs(inputs["model"]["path"]))
    claim_folder(out_dir, EVALUATION, legacy=_LEGACY)
    if overwrite:
        clear_evaluation(out_dir)
    before = read_pins(out_dir)
    if before is None and _holds_results(out_dir):
        raise LntuneError(f"{out_dir}: holds an evaluation that does not record which model it evaluated; use "
                          f"another output folder, or {how_to_restart} to start afresh")
    if before is not None:
        change = _change(before, inputs)
        if change:
            raise LntuneError(f"{out_dir}: holds an evaluation of {change}; its answers cannot be reused. Use another "
                              f"output folder, or {how_to_restart} to start afresh")
        inputs = {**inputs, "data": {**before.get("data", {}), **inputs["data"]}}
    return inputs


def read_pins(out_dir) -> dict | None:
    path = Path(out_dir) / INPUTS_FILE
    return load_json(path, "evaluation inputs") if path.is_file() else None


def record_pins(out_dir, pins: dict) -> None:
    from lntune.eval.tasks.base import write_json
    from lntune.ownership import mark_folder, read_marker

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    if read_marker(Path(out_dir)) is None:
        mark_folder(Path(out_dir), EVALUATION)
    write_json(Path(out_dir) / INPUTS_FILE, pins)


def _change(before: dict, now: dict) -> str | None:
    """'model runs/a (weights 1a2b3c4d5e6f), not runs/b (...)' or the first task whose data differ, else None."""
    old, new = before.get("model", {}), now["model"]
    if old != new:
        what = "other weights at the same path" if old.get("path") == new["path"] else f"{old.get('path')}"
        return (f"model {what} (weights {str(old.get('weights'))[:12]}), not {new['path']} "
                f"(weights {new['weights'][:12]})")
    for task, pinned in now["data"].items():
        earlier = before.get("data", {}).get(task)
        if earlier is not None and earlier != pinned:
            if earlier.get("root") != pinned["root"]:
                return f"{task} from data root {earlier.get('root')}, not {pinned['root']}"
            if earlier.get("images") != pinned["images"]:
                return f"{task} with images from {earlier.get('images')}, not {pinned['images']}"
            return f"{task} on benchmark files in {pinned['root']}/{task} that have changed since"
    return None


def _holds_results(out_dir: Path) -> bool:
    return (out_dir / "metrics.json").is_file() or any((out_dir / "predictions").glob("*.jsonl"))


def clear_evaluation(out_dir: Path) -> None:
    """Delete what an evaluation wrote into `out_dir`: its files, and in its result folders (predictions/, units/
    and the folder of each task its records list) the result files only. A result folder holding anything else
    is refused before anything is deleted."""
    from lntune.eval.tasks.registry import TASKS

    tasks = [task for task in _recorded_tasks(out_dir) if task in TASKS]
    folders = [out_dir / name for name in ("predictions", UNITS_DIR, *tasks) if (out_dir / name).is_dir()]
    for folder in folders:
        foreign = [str(p.relative_to(folder)) for p in folder.rglob("*")
                   if p.is_symlink() or not (p.is_dir() or p.suffix in _RESULT_SUFFIXES)]
        if foreign:
            raise LntuneError(f"{folder}: holds files no evaluation writes ({', '.join(sorted(foreign)[:3])}); "
                              "--overwrite deletes only lntune's own files: move them elsewhere first")
    for folder in folders:
        shutil.rmtree(folder)
    for name in _OUTPUTS:
        if (out_dir / name).is_file():
            (out_dir / name).unlink()


def _recorded_tasks(out_dir: Path) -> set[str]:
    """The tasks an evaluation's records (eval_inputs.json, eval_config.json, metrics.json) name."""
    tasks = set()
    for name, key in ((INPUTS_FILE, "data"), ("eval_config.json", "decoding"), ("metrics.json", None)):
        path = out_dir / name
        if path.is_file():
            record = load_json(path, "an evaluation record")
            section = record.get(key) if key and isinstance(record, dict) else record
            tasks |= set(section) if isinstance(section, dict) else set()
    return tasks
