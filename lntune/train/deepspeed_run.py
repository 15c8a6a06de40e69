"""What a DeepSpeed ZeRO run needs from lntune's training loop, on GPUs or on CPU processes.

    accelerate launch --config_file configs/accelerate/deepspeed_zero2_cpu.yaml -m lntune.cli train --config CFG

accelerate hands the model and optimizer to a DeepSpeed engine, whose `backward` also takes the optimizer step
(with the config's gradient clipping): `configure` fills the DeepSpeed config from the run's config before that,
and refuses what that order cannot do. The gradient norm comes from the engine. A checkpoint keeps lntune's files
(the gathered trainable tensors, scheduler, RNG) and puts the partitioned optimizer state in
`checkpoint-<step>/deepspeed/`, written by every process with the engine's own `save_checkpoint`; resuming needs
the same number of processes. DeepSpeed writes and reads those files with torch's pickle: resume only runs you
wrote.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from lntune.errors import LntuneError

FOLDER = "deepspeed"
TAG = "zero"
MARKER = {"deepspeed": TAG}  # optimizer.pt of a DeepSpeed checkpoint: the state itself is in FOLDER


def is_deepspeed(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.DEEPSPEED


def configure(accelerator, config) -> None:
    """Fill the DeepSpeed config's batch sizes and gradient clipping from `config`; one-line errors for what the
    engine's step-inside-backward cannot do."""
    t = config.train
    if t.grad_accum != 1:
        raise LntuneError(f"train.grad_accum is {t.grad_accum}: under DeepSpeed lntune runs one micro-batch per step "
                          "(the engine steps inside backward); raise train.batch_size or the number of processes")
    if t.on_nonfinite == "skip":
        raise LntuneError("train.on_nonfinite=skip cannot run under DeepSpeed (the engine updates inside backward, "
                          "before lntune sees the loss): use stop")
    ds = accelerator.state.deepspeed_plugin.deepspeed_config
    ds["train_micro_batch_size_per_gpu"] = t.batch_size
    ds.pop("train_batch_size", None)  # DeepSpeed derives it: micro-batch x 1 x processes
    ds["gradient_accumulation_steps"] = 1
    ds["gradient_clipping"] = float(t.max_grad_norm or 0.0)  # 0: no clipping


def fill_bucket_sizes(accelerator, model) -> None:
    """Fill the config's "auto" ZeRO bucket sizes from the LLM's hidden size, with accelerate's rules (which cannot
    see the model inside lntune's loss wrapper)."""
    hidden = model.config.get_text_config().hidden_size
    zero = accelerator.state.deepspeed_plugin.deepspeed_config.setdefault("zero_optimization", {})
    sizes = {"reduce_bucket_size": hidden * hidden, "stage3_prefetch_bucket_size": int(0.9 * hidden * hidden),
             "stage3_param_persistence_threshold": 10 * hidden}
    for key, value in sizes.items():
        if zero.get(key) == "auto":
            zero[key] = value


@contextlib.contextmanager
def whole_model_init(accelerator):
    """Build the model whole inside this block. accelerate registers a ZeRO-3 config with transformers whatever
    zero3_init_flag says, and transformers then initialises new weights as partitioned ones (and fails on
    buffers); the engine partitions the finished model in `prepare` instead."""
    from transformers.integrations import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    try:
        yield
    finally:
        accelerator.state.deepspeed_plugin.set_deepspeed_weakref()


def grad_norm(engine) -> float:
    """The global gradient norm before clipping, as the engine computed it in its last step."""
    norm = engine.get_global_grad_norm()
    return float("nan") if norm is None else float(norm)


def write_checkpoint(engine, staging: Path) -> None:
    """Every process writes its share of the engine's state under `staging` (a collective)."""
    engine.save_checkpoint(str(staging), tag=TAG, save_latest=False, exclude_frozen_parameters=True)


def move_into(staging: Path, folder: Path) -> None:
    """Put the engine's state written under `staging` into the checkpoint being written at `folder`."""
    shutil.move(str(staging), str(folder / FOLDER))


def check_marker(state: dict, deepspeed: bool, source) -> None:
    """A checkpoint resumes only under the setup that wrote it (DeepSpeed or not)."""
    written = state == MARKER
    if written != deepspeed:
        was, now = ("with", "without") if written else ("without", "with")
        raise LntuneError(f"{source}: the checkpoint was written {was} DeepSpeed and cannot resume {now} it; "
                          "resume with the setup that wrote it")


def load_engine_state(engine, checkpoint: Path) -> None:
    """Restore the optimizer state of `checkpoint` into the engine (the trained tensors are already loaded)."""
    folder = checkpoint / FOLDER
    if not (folder / TAG).is_dir():
        raise LntuneError(f"{folder}: no DeepSpeed state in this checkpoint")
    path, _ = engine.load_checkpoint(str(folder), tag=TAG, load_module_strict=False, load_optimizer_states=True,
                                     load_lr_scheduler_states=False)
    if path is None:
        raise LntuneError(f"{folder}: DeepSpeed could not load it (resume with the number of processes that wrote it)")
