"""The training loop: one explicit loop on accelerate, for stage 1 (connector) and stage 2 (any strategy).

    lntune train --config configs/world/stage2_layernorm.yaml [key=value ...] [--resume]
    accelerate launch -m lntune.cli train --config ...          # several processes / GPUs (DDP, FSDP, ZeRO)
    torchrun --nproc_per_node 2 -m lntune.cli train --config ... # the same on CPU with gloo
    accelerate launch --config_file configs/accelerate/fsdp_cpu.yaml -m lntune.cli train --config ...  # FSDP2 on CPU

Reads top to bottom: build the model, apply the strategy, build data and optimizer, resume if asked, then
for each optimizer step run `grad_accum` micro-batches, clip, step, log, checkpoint. The loss of a step is
the token mean over the whole global batch, so N processes equal one process with the same global batch.
"""

import contextlib
import json
import math
import time
from pathlib import Path

import torch

from lntune.config import RunConfig
from lntune.errors import LntuneError
from lntune.jsonio import dumps_strict
from lntune.strategies import StrategySpec, apply_strategy
from lntune.train import distributed_state as shards
from lntune.train import batches as plan
from lntune.train.checkpoint import list_checkpoints, load_checkpoint, require_complete, save_checkpoint, save_result
from lntune.train.finite import FiniteGuard
from lntune.train.grad_stats import GradRecorder
from lntune.train.logger import TrainLogger, peak_memory_mb, plot_loss_curve, truncate_jsonl
from lntune.train.loss import SupervisedLoss, supervised_tokens
from lntune.train.optim import make_optimizer
from lntune.train.summary import print_trainable_summary

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def strategy_spec(config: RunConfig) -> StrategySpec:
    t = config.train
    return StrategySpec(t.strategy, include_base=t.include_base, include_final_norm=t.include_final_norm,
                        train_embeddings=t.train_embeddings, lora=vars(t.lora).copy())


def base_entry(config: RunConfig) -> dict:
    """The `base` of lntune.json: what this run starts from, referenced so that runs can move
    (lntune/run_refs.py: cache entries by key, other paths relative to output_dir and absolute)."""
    from lntune.run_refs import path_ref

    m, out = config.model, config.output_dir
    if m.base:
        base = Path(m.base).resolve()
        return {"kind": "run" if (base / "lntune.json").is_file() else "hf", "path": path_ref(base, out)}
    llm = m.llm if m.llm == "embedded" else path_ref(m.llm, out)
    return {"kind": "build", "llm": llm, "vision": path_ref(m.vision, out), "projector": m.projector,
            "vision_feature_layer": m.vision_feature_layer, "seed": m.seed, "chat_template": m.chat_template,
            "projector_init_scale": m.projector_init_scale}


def build_model(config: RunConfig):
    from lntune.model.load import load_base

    return load_base(base_entry(config), dtype=_DTYPES[config.model.dtype], relative_to=Path(config.output_dir))


def train(config: RunConfig, resume: bool = False) -> Path:
    """Run one stage into config.output_dir, holding its lock (a second writer is refused, naming this pid)."""
    from lntune.train.run_guard import guarded_output

    with guarded_output(config, resume):
        return _train(config, resume)


def _train(config: RunConfig, resume: bool) -> Path:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from lntune.data.collate import LlavaCollator
    from lntune.data.dataset import LlavaDataset

    t = config.train
    out = Path(config.output_dir)
    # cpu=True is what makes accelerate use gloo across processes (torchrun / accelerate launch) without a GPU
    accelerator = Accelerator(mixed_precision=t.mixed_precision, cpu=not torch.cuda.is_available())
    if accelerator.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = t.tf32
    layout = shards.sharding_layout(accelerator)
    shards.refuse_broken_combinations(accelerator, config)
    set_seed(t.seed)
    main = accelerator.is_main_process
    if main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "run_config.json").write_text(json.dumps(config.to_dict(), indent=2))

    model, processor = build_model(config)
    spec = strategy_spec(config)
    apply_strategy(model, spec)
    if t.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    d = config.data
    dataset = LlavaDataset(d.path, d.image_folder, processor, max_length=d.max_length, data_types=d.data_types,
                           max_samples=d.max_samples, seed=t.seed, truncation=d.truncation,
                           on_bad_sample=d.on_bad_sample)
    if len(dataset) == 0:
        raise LntuneError(f"{d.path}: no usable training samples")
    if config.model.projector_init == "caption_alignment" and not config.model.base and not (resume and list_checkpoints(out)):
        _warm_start_projector(config, model, processor, dataset, main)  # on whole tensors, before any sharding
    wrapper = SupervisedLoss(model, compile_layers=t.compile)
    if layout == "fsdp2":
        shards.shard_for_fsdp2(wrapper, model)  # before the optimizer: sharding replaces the parameters
    world, rank = accelerator.num_processes, accelerator.process_index
    global_batch = t.batch_size * world
    lengths = dataset.lengths
    epoch_plans = lambda epoch: plan.epoch_micro_batches(lengths, global_batch, t.seed, epoch, d.group_by_length, world)
    per_epoch = plan.steps_per_epoch(len(epoch_plans(0)), t.grad_accum)
    if per_epoch == 0:
        raise LntuneError(f"{d.path}: {len(dataset)} samples are fewer than one optimizer step "
                          f"(batch_size {t.batch_size} x grad_accum {t.grad_accum} x {world} processes)")
    total_steps = per_epoch * t.epochs if t.max_steps is None else min(t.max_steps, per_epoch * t.epochs)

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, t)
    scheduler = _scheduler(optimizer, t.scheduler, math.ceil(t.warmup_ratio * total_steps), total_steps)
    if main:
        print_trainable_summary(model, spec)
        print(f"lntune: {len(dataset)} samples, {per_epoch} steps/epoch, {total_steps} steps; effective batch "
              f"{t.batch_size} x {t.grad_accum} accum x {world} processes = {global_batch * t.grad_accum}; "
              f"device {accelerator.device}, mixed precision {t.mixed_precision}; "
              f"{dataset.stats['images_decoded']} images fully decoded in {dataset.stats['image_check_s']:.1f} s")

    step, epoch, done_in_epoch = 0, 0, 0
    checkpoints = list_checkpoints(out) if resume else []
    if checkpoints:
        require_complete(checkpoints[-1])
        state = load_checkpoint(checkpoints[-1], model, optimizer, scheduler,
                                load_optimizer=lambda o, s, source: shards.load_optimizer_state(layout, wrapper, o, s, source))
        step, epoch, done_in_epoch = state["step"], state["epoch"], state["steps_in_epoch"]
        if main:
            print(f"lntune: resumed from {checkpoints[-1]} (step {step})")

    if layout == "fsdp2":
        optimizer = accelerator.prepare(optimizer)  # the model is already sharded: no DDP wrapper around it
    else:
        wrapper, optimizer = accelerator.prepare(wrapper, optimizer)
    collate = LlavaCollator(processor.tokenizer.pad_token_id)
    logger = TrainLogger(out, total_steps, step, enabled=main)
    grads = GradRecorder(model, t.track_grads or [], out / "grads.jsonl", enabled=main and bool(t.track_grads))
    if main:
        truncate_jsonl(out / "grads.jsonl", step)  # a resumed run must not record a step twice
    started = time.perf_counter()
    loss_value = float("nan")
    guard = FiniteGuard(out, t.on_nonfinite)
    while step < total_steps:
        micro = epoch_plans(epoch)
        steps_this_epoch = plan.steps_per_epoch(len(micro), t.grad_accum)
        mine = [plan.rank_slice(b, rank, world) for b in micro[done_in_epoch * t.grad_accum: steps_this_epoch * t.grad_accum]]
        # Its own generator: creating an iterator must not draw from the global RNG (dropout), or resume would shift it.
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=mine, collate_fn=collate, num_workers=d.num_workers,
                                             generator=torch.Generator().manual_seed(t.seed + epoch))
        batches = iter(loader)
        while done_in_epoch < steps_this_epoch and step < total_steps:
            group = [next(batches) for _ in range(t.grad_accum)]
            loss_value, grad_norm, tokens = _optimizer_step(accelerator, wrapper, optimizer, group, params, t.max_grad_norm,
                                                            layout)
            # Under fp16 the grad scaler skips overflowing steps itself (and must see them): guard the loss only.
            guarded_norm = None if getattr(accelerator, "scaler", None) is not None else grad_norm
            if not guard.before_update(step + 1, loss_value, guarded_norm):
                grads.record(step + 1)
                optimizer.step()
                guard.after_update(step + 1, params, accelerator)
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            done_in_epoch += 1
            if step % t.log_steps == 0 or step == total_steps:
                logger.log(step, epoch, loss_value, scheduler.get_last_lr()[0], grad_norm, tokens)
            if t.save_steps and step % t.save_steps == 0 and step < total_steps:
                accelerator.wait_for_everyone()
                tensors = shards.full_trainable_state(accelerator, layout, model, wrapper)  # every process gathers
                optimizer_state = shards.optimizer_state(layout, wrapper, optimizer.optimizer)
                if main:
                    save_checkpoint(out, step, model, optimizer.optimizer, scheduler,
                                    {"step": step, "epoch": epoch, "steps_in_epoch": done_in_epoch}, t.save_total_limit,
                                    tensors=tensors, optimizer_state=optimizer_state)
        if done_in_epoch >= steps_this_epoch:
            epoch, done_in_epoch = epoch + 1, 0
    logger.close()
    guard.finish()
    accelerator.wait_for_everyone()
    tensors = shards.full_trainable_state(accelerator, layout, model, wrapper)
    if main:
        _finish(out, config, tensors, spec, accelerator, time.perf_counter() - started, step, loss_value, len(dataset))
    accelerator.end_training()
    return out


WARM_START_PAIRS = 4096
"""At most this many (image, caption) pairs, a seeded sample, feed the projector warm start."""


def _warm_start_projector(config, model, processor, dataset, main) -> None:
    from lntune.model.projector_warmstart import align_projector

    import random

    records = [s.record for s in dataset.samples]
    if len(records) > WARM_START_PAIRS:  # the features of every pair are held in memory at once
        records = random.Random(config.model.seed).sample(records, WARM_START_PAIRS)
    stats = align_projector(model, processor, records, config.data.image_folder,
                            steps=config.model.projector_init_steps, rounds=config.model.projector_init_rounds,
                            seed=config.model.seed, progress=main)
    if main:
        print(f"lntune: projector warm start from {stats['pairs']} caption pairs, {stats['steps']} steps, "
              f"alignment loss {stats['final_loss']}, {stats['rounds']} self-training rounds")


def _optimizer_step(accelerator, wrapper, optimizer, group, params, max_grad_norm, layout="replicated"):
    """Forward/backward every micro-batch of one optimizer step; returns (mean token loss, grad norm, tokens)."""
    device = accelerator.device
    local = sum(supervised_tokens(b["labels"]) for b in group)
    total = accelerator.reduce(torch.tensor(float(local), device=device), reduction="sum").item()
    divisor = max(total, 1.0) / accelerator.num_processes  # DDP and FSDP average gradients over processes
    loss_sum, tokens = torch.zeros((), device=device), 0
    for i, batch in enumerate(group):
        batch = {k: v.to(device) for k, v in batch.items()}
        tokens += int(batch["attention_mask"].sum())
        last = i == len(group) - 1
        with shards.no_sync(accelerator, layout, wrapper) if not last else contextlib.nullcontext():
            with accelerator.autocast():
                loss = wrapper(batch["input_ids"], batch["attention_mask"], batch["labels"], batch["pixel_values"], divisor)
            accelerator.backward(loss)
        loss_sum += loss.detach()
    loss_value = accelerator.reduce(loss_sum, reduction="mean").item()
    # With clipping off, an infinite bound still yields the norm (the finite check needs it) and scales by exactly 1.
    grad_norm = shards.whole(accelerator.clip_grad_norm_(params, max_grad_norm or float("inf")))
    tokens = int(accelerator.reduce(torch.tensor(tokens, device=device), reduction="sum").item())
    return loss_value, grad_norm, tokens


def _scheduler(optimizer, name, warmup, total):
    from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    if name == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, warmup, total)
    if name == "linear":
        return get_linear_schedule_with_warmup(optimizer, warmup, total)
    return get_constant_schedule_with_warmup(optimizer, warmup)


def _finish(out, config, tensors, spec, accelerator, seconds, steps, last_loss, samples):
    from lntune import __version__

    save_result(out, None, tensors=tensors, run_meta={"format": 1, "lntune_version": __version__, "base": base_entry(config),
                             "strategy": spec.to_dict(), "config": config.to_dict()})
    summary = {"steps": steps, "final_loss": last_loss, "train_seconds": seconds, "samples": samples,
               "peak_memory_mb": peak_memory_mb(accelerator.device), "device": str(accelerator.device)}
    (out / "summary.json").write_text(dumps_strict(summary, out / "summary.json", indent=2))
    plot_loss_curve(out / "metrics.jsonl", out / "loss.png", title=f"{config.train.strategy}: {out.name}")
    print(f"lntune: done in {seconds:.0f} s, final loss {last_loss:.4f}, peak memory {summary['peak_memory_mb']:.0f} MB "
          f"-> {out / 'trainable.safetensors'}")
