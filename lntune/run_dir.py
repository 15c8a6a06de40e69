"""A training run's folder: the names of the files in it, and whether the run has finished.

    from lntune.run_dir import RunDir
    run = RunDir("runs/ln")
    run.finished, run.trainable_file, run.run_file, run.inputs_file

A finished run holds `trainable.safetensors` (only the tensors that trained) and `lntune.json` (what lntune
needs to rebuild base + strategy; lntune/model/load.py); `inputs.json` records what it was trained from
(lntune/fingerprint.py); `checkpoint-<step>/` folders hold resumable state (lntune/train/checkpoint.py).
Every other module names these files through this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RUN_FILE = "lntune.json"
TRAINABLE_FILE = "trainable.safetensors"
INPUTS_FILE = "inputs.json"
CHECKPOINT_PREFIX = "checkpoint-"
WRITTEN = (CHECKPOINT_PREFIX, TRAINABLE_FILE, RUN_FILE, INPUTS_FILE)  # what a training run writes into its folder


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __init__(self, path):
        object.__setattr__(self, "path", Path(path))

    @property
    def run_file(self) -> Path:
        return self.path / RUN_FILE

    @property
    def trainable_file(self) -> Path:
        return self.path / TRAINABLE_FILE

    @property
    def inputs_file(self) -> Path:
        return self.path / INPUTS_FILE

    def checkpoint(self, step: int) -> Path:
        return self.path / f"{CHECKPOINT_PREFIX}{step}"

    @property
    def is_run(self) -> bool:
        """Whether the folder is an lntune run (finished or not yet loadable), as opposed to an HF model folder."""
        return self.run_file.is_file()

    @property
    def finished(self) -> bool:
        """Whether training wrote its result: the trained tensors and the run file."""
        return self.trainable_file.is_file() and self.run_file.is_file()
