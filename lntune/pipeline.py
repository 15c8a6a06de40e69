"""Building blocks shared by quickstart, sweep and reproduce: run a stage or an evaluation unless it is done.

A stage whose `trainable.safetensors` exists is skipped; one with checkpoints is resumed; an evaluation
whose metrics.json exists is read back (the eval runner itself resumes a half-finished one). So every
orchestrated job can be killed and simply run again.
"""

import json
from pathlib import Path

from lntune.config import RunConfig, load_config, resolve_paths

CONFIG_ROOT = Path(__file__).resolve().parent / "configs"
EVAL_TASKS = ("mme", "vqav2", "coco", "flickr30k", "pope")


def packaged_config(name: str) -> Path:
    """A config shipped with lntune, e.g. 'world/stage1' -> lntune/configs/world/stage1.yaml."""
    return CONFIG_ROOT / f"{name}.yaml"


def stage_config(name: str, overrides: list[str]) -> RunConfig:
    path = packaged_config(name)
    return resolve_paths(load_config(path, overrides), path.parent)


def run_stage(config: RunConfig) -> Path:
    """Train unless finished; resume when checkpoints exist."""
    from lntune.train.checkpoint import list_checkpoints
    from lntune.train.loop import train

    out = Path(config.output_dir)
    if (out / "trainable.safetensors").is_file() and (out / "lntune.json").is_file():
        print(f"lntune: {out} is finished; skipping")
        return out
    return train(config, resume=bool(list_checkpoints(out)))


def evaluate_run(run_dir, out_dir, data_root, tasks=EVAL_TASKS, limit=None, batch_size=8, name=None, **kwargs) -> dict:
    """{task: metrics} for a model directory; reads a finished evaluation back instead of redoing it."""
    out_dir = Path(out_dir)
    done = out_dir / "metrics.json"
    if done.is_file():
        from lntune.eval.intervals import units_path

        metrics = json.loads(done.read_text())
        # An evaluation without the per-unit records (an older lntune) is re-scored: nothing is regenerated.
        if all(task in metrics and units_path(out_dir, task).is_file() for task in tasks):
            return {task: metrics[task] for task in tasks}
    from lntune.eval.runner import evaluate
    from lntune.model.load import load_mllm

    model, processor = load_mllm(run_dir)
    model.eval()
    return evaluate(model, processor, list(tasks), data_root, out_dir, batch_size=batch_size, limit=limit,
                    model_name=name or Path(run_dir).name, **kwargs)
