"""Building blocks shared by quickstart, sweep and reproduce: run a stage or an evaluation unless it is done.

"Done" means done with these inputs. A stage whose `trainable.safetensors` exists is skipped only when the
inputs it recorded (OUT/inputs.json: config, base model weights, data file; see lntune/fingerprint.py) equal
today's; one with checkpoints is resumed (train refuses a resume with other inputs); an evaluation whose
metrics.json covers the tasks is read back only when it was made from the same model, benchmark files,
protocol and decoding (lntune/eval/pinning.py; the eval runner itself resumes a half-finished one). A
mismatch is refused with one line naming what changed, never silently reused and never silently
overwritten: the folder holds finished work, so deleting it (or using another output folder) is the
user's call. So every orchestrated job can be killed and simply run again.
"""

from pathlib import Path

from lntune.config import RunConfig, load_config, resolve_paths
from lntune.errors import LntuneError
from lntune.eval.tasks.registry import EVAL_TASKS
from lntune.run_dir import RunDir

CONFIG_ROOT = Path(__file__).resolve().parent / "configs"
_NOT_SETTINGS = {"image_root", "progress"}  # pinned elsewhere, or not an input


def packaged_config(name: str) -> Path:
    """A config shipped with lntune, e.g. 'world/stage1' -> lntune/configs/world/stage1.yaml."""
    return CONFIG_ROOT / f"{name}.yaml"


def ready_config(path, overrides=()) -> RunConfig:
    """The config at `path` with its overrides, its world and vision tower built (cached) and its paths filled."""
    from lntune.world.cache import prepare_world

    path = Path(path)
    config = load_config(path, overrides)
    return resolve_paths(config, path.resolve().parent, **prepare_world(config))


def stage_config(name: str, overrides: list[str]) -> RunConfig:
    return ready_config(packaged_config(name), overrides)


def run_stage(config: RunConfig) -> Path:
    """Train unless finished; resume when checkpoints exist."""
    from lntune.train.checkpoint import list_checkpoints
    from lntune.train.loop import train

    out = Path(config.output_dir)
    if RunDir(out).finished:
        require_same_inputs(out, config)
        print(f"lntune: {out} is finished; skipping")
        return out
    return train(config, resume=bool(list_checkpoints(out)))


def require_same_inputs(out: Path, config: RunConfig) -> None:
    """LntuneError when the finished run in `out` was trained from other inputs than `config`'s."""
    from lntune.fingerprint import BOOKKEEPING, first_difference, flat_config, stage_change, stage_inputs
    from lntune.model.load import read_run_file
    from lntune.train.run_guard import read_inputs

    before, now = read_inputs(out), stage_inputs(config)
    if before is not None:
        change = stage_change(before, now)
    else:  # a run that predates inputs.json: its config is all there is to compare
        recorded = read_run_file(out).get("config", {})
        old = {k: v for k, v in flat_config(recorded).items() if k not in BOOKKEEPING}
        # keys added to lntune after that run was made are not differences
        change = first_difference(old, {k: v for k, v in now["config"].items() if k in old})
    if change:
        raise LntuneError(f"{out} holds a finished run trained from other inputs ({change}); use another output "
                          "folder, or delete this one to train it again")


def evaluate_run(run_dir, out_dir, data_root, tasks=EVAL_TASKS, limit=None, batch_size=8, name=None, dtype=None,
                 **kwargs) -> dict:
    """{task: metrics} for a model directory, loaded in `dtype` ("float32", "bfloat16"; None: load_mllm's default);
    reads a finished evaluation back instead of redoing it."""
    from lntune.eval.pinning import eval_inputs, pin_evaluation, read_pins, record_pins
    from lntune.jsonio import load_json
    from lntune.locks import hold_lock

    out_dir = Path(out_dir)
    with hold_lock(out_dir, "evaluation"):
        before = read_pins(out_dir) or {}
        pins = pin_evaluation(out_dir, eval_inputs(run_dir, data_root, kwargs.get("image_root"), tasks),
                              how_to_restart="delete the folder")
        # Read back only what was scored with the same settings; otherwise the runner resumes (and refuses a
        # change of protocol or decoding) and scores again.
        pins["settings"] = {"limit": limit, **{k: v for k, v in sorted(kwargs.items()) if k not in _NOT_SETTINGS}}
        if dtype is not None:
            pins["settings"]["dtype"] = dtype
        done = out_dir / "metrics.json"
        if done.is_file() and before.get("settings") == pins["settings"]:
            from lntune.eval.intervals import units_path

            metrics = load_json(done, "an evaluation's metrics ({task: metrics})")
            # An evaluation without the per-unit records (an older lntune) is re-scored: nothing is regenerated.
            if all(task in metrics and units_path(out_dir, task).is_file() for task in tasks):
                return {task: metrics[task] for task in tasks}
        from lntune.eval.runner import evaluate
        from lntune.model.load import load_mllm

        import torch

        model, processor = load_mllm(run_dir, dtype=None if dtype is None else getattr(torch, dtype))
        model.eval()
        record_pins(out_dir, pins)
        return evaluate(model, processor, list(tasks), data_root, out_dir, batch_size=batch_size, limit=limit,
                        model_name=name or Path(run_dir).name, **kwargs)
