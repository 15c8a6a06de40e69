"""What `train` checks and holds around a run: the output folder's lock, "already holds a run", pinned inputs.

    with guarded_output(config, resume):
        ...train...

- the lock (lntune/locks.py) makes a second `lntune train` on the same output_dir fail at once, naming the
  first one's pid; only the main process of a multi-process run takes it;
- output_dir must be new, empty or a training run's (lntune/ownership.py); a folder holding a finished run or
  checkpoints is refused unless `resume`;
- OUT/inputs.json records the stage's inputs (lntune/fingerprint.py): resuming with other inputs is refused,
  naming the first difference, since the result would be neither run;
- temporary files left by killed writers are removed (safe: nobody else writes while we hold the lock).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from lntune.errors import LntuneError
from lntune.fingerprint import stage_change, stage_inputs
from lntune.run_dir import INPUTS_FILE, WRITTEN, RunDir
from lntune.locks import hold_lock, remove_stale_temps, write_text_atomic
from lntune.ownership import claim_folder, mark_folder

TRAINING_RUN = "training run"
# What marks a folder as a run from before lntune's marker (lntune/ownership.py)
WRITTEN_FILES = ("lntune.json", INPUTS_FILE, "run_config.json", "metrics.jsonl")



def is_main_process() -> bool:
    """Rank 0 of torchrun / accelerate launch (which set RANK), or a single process."""
    return int(os.environ.get("RANK", "0")) == 0


@contextlib.contextmanager
def guarded_output(config, resume: bool):
    out = Path(config.output_dir)
    if not is_main_process():  # the main process holds the lock and records the inputs; every rank refuses alike
        _refuse_unless_resuming(out, resume)
        yield out
        return
    claim_folder(out, TRAINING_RUN, legacy=WRITTEN_FILES, option="output_dir")  # before the lock file goes in
    with hold_lock(out, "training run"):
        claim_folder(out, TRAINING_RUN, legacy=WRITTEN_FILES, option="output_dir")
        mark_folder(out, TRAINING_RUN)
        held = _refuse_unless_resuming(out, resume)
        for prefix in WRITTEN:
            remove_stale_temps(out, prefix)
        record_inputs(out, stage_inputs(config), check=held)
        yield out


def _refuse_unless_resuming(out: Path, resume: bool) -> bool:
    """Whether `out` holds a run (a result or checkpoints); LntuneError when it does and this is no resume."""
    from lntune.train.checkpoint import list_checkpoints

    held = RunDir(out).trainable_file.exists() or bool(list_checkpoints(out))
    if held and not resume:
        raise LntuneError(f"{out} already holds a run: pass --resume to continue it, or choose another output_dir")
    return held


def read_inputs(out: Path) -> dict | None:
    from lntune.jsonio import load_json

    path = out / INPUTS_FILE
    if not path.is_file():
        return None
    inputs = load_json(path, "a training run's recorded inputs")
    if not isinstance(inputs, dict):
        raise LntuneError(f"{path}: expected a JSON object (config, base_weights, data_file)")
    return inputs


def record_inputs(out: Path, inputs: dict, check: bool) -> None:
    """Write OUT/inputs.json; with `check`, first refuse when the recorded inputs differ."""
    before = read_inputs(out) if check else None
    if check and before is None:
        raise LntuneError(f"{out / INPUTS_FILE}: missing, so what this run was trained from is unknown; resuming could "
                          "mix two runs: choose another output_dir, or delete the folder to start afresh")
    if before is not None:
        change = stage_change(before, inputs)
        if change:
            raise LntuneError(f"{out} holds a run with other inputs ({change}); resuming would mix two runs: "
                              "choose another output_dir, or delete the folder to start afresh")
    write_text_atomic(out / INPUTS_FILE, json.dumps(inputs, indent=1))
