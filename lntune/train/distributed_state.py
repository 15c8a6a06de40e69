"""How a training run's parameters are spread over processes, and how to save and restore them whole.

    accelerate launch --config_file configs/accelerate/fsdp_cpu.yaml -m lntune.cli train --config CFG

Three layouts:
  * "replicated": one process, DDP, or DeepSpeed ZeRO-1/2 — every process holds every parameter;
  * "accelerate": accelerate shards the model itself (FSDP on GPUs, DeepSpeed ZeRO-3);
  * "fsdp2": FSDP requested on CPU processes. accelerate ignores its FSDP plugin without a GPU (gloo runs
    as plain multi-CPU DDP), so lntune shards the model itself with PyTorch's FSDP2 (`fully_shard`):
    every decoder block and vision-encoder block is one unit, the loss wrapper (projector, embeddings,
    head, final norm, ...) the root unit. Gradients are averaged over processes as under DDP.

Whatever the layout, what is written is the same: the trainable tensors gathered whole, under their
1-process names (`full_trainable_state`), and an optimizer state that the next run can load back.
Gathering is a collective: every process calls it; only the main process writes the result.
"""

from __future__ import annotations

import contextlib
import os

import torch

from lntune.errors import LntuneError

FSDP_ENV = "ACCELERATE_USE_FSDP"
DEEPSPEED_ENV = "ACCELERATE_USE_DEEPSPEED"


def deepspeed_requested() -> bool:
    """Whether a launcher (accelerate launch with a DeepSpeed config) asked for DeepSpeed."""
    return os.environ.get(DEEPSPEED_ENV, "false").lower() == "true" and int(os.environ.get("LOCAL_RANK", -1)) != -1


def sharding_layout(accelerator) -> str:
    """"replicated", "accelerate" (accelerate's FSDP / ZeRO-3) or "fsdp2" (lntune's FSDP2 on CPU)."""
    from accelerate.utils import DistributedType

    kind = accelerator.distributed_type
    if kind == DistributedType.FSDP:
        return "accelerate"
    if kind == DistributedType.DEEPSPEED:
        return "accelerate" if _zero_stage(accelerator) == 3 else "replicated"
    if kind == DistributedType.MULTI_CPU and os.environ.get(FSDP_ENV, "false").lower() == "true":
        return "fsdp2"
    return "replicated"


def _zero_stage(accelerator) -> int:
    return int(accelerator.state.deepspeed_plugin.deepspeed_config.get("zero_optimization", {}).get("stage", 0))


def refuse_broken_combinations(accelerator, config) -> None:
    """Stop before training, with a one-line reason, on a setup known not to work."""
    from accelerate.utils import DistributedType

    t, layout = config.train, sharding_layout(accelerator)
    sharded = layout != "replicated" or accelerator.distributed_type == DistributedType.DEEPSPEED
    if t.track_grads and sharded:
        raise LntuneError("train.track_grads needs whole gradients on every process; it cannot run under FSDP or "
                          "DeepSpeed (their gradients are sharded): use one process or DDP")
    if layout == "fsdp2" and os.environ.get("FSDP_VERSION", "2") != "2":
        raise LntuneError("FSDP on CPU processes runs PyTorch's FSDP2: set fsdp_version: 2 in the accelerate config")
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        steps = accelerator.state.deepspeed_plugin.deepspeed_config.get("gradient_accumulation_steps", 1)
        if steps not in (1, "auto"):
            raise LntuneError(f"DeepSpeed gradient_accumulation_steps is {steps}: lntune accumulates gradients itself "
                              "(train.grad_accum); set it to 1 in the DeepSpeed config")


def shard_for_fsdp2(wrapper, mllm) -> None:
    """FSDP2 in place: each decoder / vision-encoder block a unit, `wrapper` (the loss module) the root."""
    from torch.distributed.fsdp import fully_shard

    reshard = os.environ.get("FSDP_RESHARD_AFTER_FORWARD", "true").lower() == "true"
    blocks = list(mllm.model.language_model.layers)
    vision_layers = getattr(getattr(getattr(mllm.model.vision_tower, "vision_model", None), "encoder", None), "layers", None)
    blocks += list(vision_layers or [])
    for block in blocks:
        fully_shard(block, reshard_after_forward=reshard)
    fully_shard(wrapper, reshard_after_forward=reshard)


def no_sync(accelerator, layout: str, wrapper):
    """accelerate's no_sync for DDP; FSDP2 reduce-scatters every micro-batch (correct, just more traffic)."""
    return contextlib.nullcontext() if layout == "fsdp2" else accelerator.no_sync(wrapper)


def whole(value):
    """A gathered plain tensor from a DTensor (a collective); anything else unchanged."""
    from torch.distributed.tensor import DTensor

    return value.full_tensor() if isinstance(value, DTensor) else value


def full_trainable_state(accelerator, layout: str, mllm, prepared=None) -> dict:
    """{parameter name: whole tensor on CPU} for the parameters that train, named as in one process.

    Every process must call it. Under "accelerate" (FSDP on GPUs, DeepSpeed ZeRO-3) accelerate's
    `get_state_dict` gathers the prepared module's state dict, which is complete on the main process only.
    """
    names = [name for name, p in mllm.named_parameters() if p.requires_grad]
    if layout == "accelerate":
        state = accelerator.get_state_dict(prepared)
        if not accelerator.is_main_process:  # DeepSpeed ZeRO-3 gives the others None
            return {}
        prefix = "mllm."  # the prepared module is lntune's SupervisedLoss wrapper around the model
        state = {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}
        missing = [n for n in names if n not in state]
        if missing:
            raise LntuneError(f"the gathered state dict lacks {len(missing)} trainable tensors, e.g. {missing[:3]}")
        return {n: state[n].detach().to("cpu").contiguous() for n in names}
    if layout == "replicated" and not accelerator.is_main_process:
        return {}  # nothing to gather, and only the main process writes
    params = dict(mllm.named_parameters())
    return {n: whole(params[n].detach()).to("cpu").contiguous() for n in names}


def optimizer_state(layout: str, wrapper, optimizer) -> dict:
    """The optimizer's state to save: under FSDP2 gathered whole and keyed by parameter name."""
    if layout != "fsdp2":
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(wrapper, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state(layout: str, wrapper, optimizer, state: dict, source) -> None:
    """Restore what `optimizer_state` saved, re-sharding it under FSDP2; a checkpoint of the other kind is refused."""
    keyed_by_name = any(isinstance(k, str) for k in state.get("state", {}))
    if keyed_by_name != (layout == "fsdp2"):
        written, now = ("with", "without") if keyed_by_name else ("without", "with")
        raise LntuneError(f"{source}: the checkpoint was written {written} FSDP and cannot resume {now} it; "
                          "resume with the setup that wrote it")
    if layout != "fsdp2":
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(wrapper, optimizer, state, options=StateDictOptions(full_state_dict=True))
