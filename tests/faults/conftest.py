"""Shared, read-only inputs of the fault tests: a tiny stage-1 run and a stage-2 run on it (with checkpoints),
trained once per session in a few seconds. A test that damages a run copies it first (`copy_run`)."""

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_models import make_tiny_run_inputs  # noqa: E402


def train_tiny(inputs: dict, out: Path, **overrides) -> Path:
    from lntune.config import load_config
    from lntune.train.loop import train

    data = json.loads(json.dumps(inputs))
    data["output_dir"] = str(out)
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return train(load_config(data=data))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """{"inputs": config dict, "stage1": run, "stage2": run (base stage1, its checkpoint at step 1)}."""
    root = tmp_path_factory.mktemp("faults")
    inputs = make_tiny_run_inputs(root / "inputs", samples=8)
    stage1 = train_tiny(inputs, root / "runs" / "stage1", train={"strategy": "connector", "max_steps": 1})
    stage2 = train_tiny(inputs, root / "runs" / "stage2", model={"base": str(stage1)},
                        train={"strategy": "layernorm", "max_steps": 2, "save_steps": 1, "batch_size": 2})
    return {"inputs": inputs, "stage1": stage1, "stage2": stage2, "root": root}


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest, symlinks=True)
    return dest
