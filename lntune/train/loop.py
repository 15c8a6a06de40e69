"""The training loop: one Trainer on accelerate, for stage 1 (connector) and stage 2 (any strategy).

    lntune train --config configs/world/stage2_layernorm.yaml [key=value ...] [--resume]
    accelerate launch -m lntune.cli train --config ...          # several processes / GPUs (DDP, FSDP, ZeRO)
    torchrun --nproc_per_node 2 -m lntune.cli train --config ... # the same on CPU with gloo
    accelerate launch --config_file configs/accelerate/fsdp_cpu.yaml -m lntune.cli train --config ...  # FSDP2 on CPU

    from lntune.train.loop import Trainer, train
    out = train(config)                    # = Trainer(config).run() under the output folder's lock
    trainer = Trainer(config).setup()      # or its parts: start(), build_model(), load_data(), prepare()
    batches = iter(trainer.loader(trainer.epoch_plan(0), epoch=0))
    result = trainer.step([next(batches)])  # one optimizer step (grad_accum micro-batches); `lntune bench` times it

`setup()` reads top to bottom: start accelerate and seed, build the model, apply the strategy, build the
data and the optimizer, resume if asked. `step()` runs `grad_accum` micro-batches, clips, checks for
non-finite values, updates. `run()` steps through the epochs' plans, logging and checkpointing, then
`save()` writes the result. The loss of a step is the token mean over the whole global batch, so N
processes equal one process with the same global batch.
"""

import contextlib
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import torch

from lntune.config import RunConfig
from lntune.errors import LntuneError
from lntune.jsonio import dumps_strict
from lntune.run_dir import CHECKPOINT_PREFIX, RunDir
from lntune.strategies import StrategySpec, apply_strategy
from lntune.train import distributed_state as shards
from lntune.train import batches as plan
from lntune.train import deepspeed_run
from lntune.train.checkpoint import list_checkpoints, load_checkpoint, require_complete, save_checkpoint, save_result
from lntune.train.finite import FiniteGuard
from lntune.train.grad_stats import GradRecorder
from lntune.train.logger import TrainLogger, peak_memory_mb, plot_loss_curve, truncate_jsonl
from lntune.train.loss import SupervisedLoss, supervised_tokens
from lntune.train.optim import make_optimizer, make_scheduler
from lntune.train.summary import print_trainable_summary

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def strategy_spec(config: RunConfig) -> StrategySpec:
    return config.train.strategy_spec()


def base_entry(config: RunConfig, pin: bool = False) -> dict:
    """The `base` of lntune.json: what this run starts from, referenced so that runs can move
    (lntune/run_refs.py: cache entries by key, other paths relative to output_dir and absolute). With `pin`, a
    base run or model also carries the fingerprint of its weights, so that a replaced base is refused on load."""
    from lntune.run_refs import path_ref

    m, out = config.model, config.output_dir
    if m.base:
        from lntune.fingerprint import model_fingerprint

        base = Path(m.base).resolve()
        entry = {"kind": "run" if RunDir(base).is_run else "hf", "path": path_ref(base, out)}
        return {**entry, "weights": model_fingerprint(base)} if pin else entry
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
        return Trainer(config, resume).run()


WARM_START_PAIRS = 4096
"""At most this many (image, caption) pairs, a seeded sample, feed the projector warm start."""


class StepResult(NamedTuple):
    loss: float  # token-mean loss over the global batch
    grad_norm: float  # before clipping
    tokens: int  # non-pad tokens over all processes


@contextlib.contextmanager
def _schedule_past_a_skipped_step():
    """A skipped step still advances the schedule, on purpose: torch's "scheduler before optimizer" warning
    (raised when the very first step is skipped) is noise there."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
        yield


class Trainer:
    """One training run of `config`. `run()` is `lntune train`; the other methods are its parts, public so
    that a benchmark or a probe runs exactly what training runs."""

    def __init__(self, config: RunConfig, resume: bool = False):
        self.config, self.resume = config, resume
        self.out = Path(config.output_dir)
        self.dataset = None
        self.global_step, self.epoch, self.done_in_epoch = 0, 0, 0

    # ---- setup ----

    def setup(self) -> "Trainer":
        """Everything before the first step of `lntune train`."""
        self.start()
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "run_config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
        self.build_model()
        self.load_data()
        self.prepare()
        if self.main:
            t = self.config.train
            print_trainable_summary(self.model, self.spec)
            print(f"lntune: {len(self.dataset)} samples, {self.per_epoch} steps/epoch, {self.total_steps} steps; "
                  f"effective batch {t.batch_size} x {t.grad_accum} accum x {self.world} processes = "
                  f"{t.batch_size * self.world * t.grad_accum}; device {self.accelerator.device}, mixed precision "
                  f"{t.mixed_precision}; {self.dataset.stats['images_decoded']} images fully decoded in "
                  f"{self.dataset.stats['image_check_s']:.1f} s")
            if self.resumed_from:
                print(f"lntune: resumed from {self.resumed_from} (step {self.global_step})")
        return self

    def start(self) -> "Trainer":
        """The accelerator (processes, device, mixed precision) and the seed."""
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        t = self.config.train
        # cpu=True is what makes accelerate use gloo across processes (torchrun / accelerate launch) without a GPU;
        # it would also drop a DeepSpeed request, which on CPU processes runs on DeepSpeed's CPU accelerator over gloo.
        handlers = []
        cpu = not torch.cuda.is_available()
        if cpu and shards.deepspeed_requested():
            from accelerate.utils import InitProcessGroupKwargs

            cpu, handlers = False, [InitProcessGroupKwargs(backend="gloo")]
        self.accelerator = Accelerator(mixed_precision=t.mixed_precision, cpu=cpu, kwargs_handlers=handlers)
        if self.accelerator.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = t.tf32
        self.layout = shards.sharding_layout(self.accelerator)
        shards.refuse_broken_combinations(self.accelerator, self.config)
        self.deepspeed = deepspeed_run.is_deepspeed(self.accelerator)
        if self.deepspeed:
            deepspeed_run.configure(self.accelerator, self.config)
        set_seed(t.seed)
        self.main = self.accelerator.is_main_process
        self.world, self.rank = self.accelerator.num_processes, self.accelerator.process_index
        return self

    def build_model(self, built=None) -> "Trainer":
        """The model and processor (`built`: an already built (model, processor); default: from the config),
        with the strategy applied."""
        from lntune.model.precision import fastest_attention

        with deepspeed_run.whole_model_init(self.accelerator) if self.deepspeed else contextlib.nullcontext():
            self.model, self.processor = build_model(self.config) if built is None else built
        half = self.config.train.mixed_precision != "no" or self.config.model.dtype != "float32"
        fastest_attention(self.model, "cuda" if torch.cuda.is_available() else "cpu",
                          torch.bfloat16 if half else torch.float32)
        self.spec = strategy_spec(self.config)
        apply_strategy(self.model, self.spec)
        # Parts loaded with from_pretrained arrive in eval mode, where HF skips gradient checkpointing (and
        # dropout). The frozen vision tower stays in eval mode: none of it is kept for a backward pass.
        self.model.train()
        tower = getattr(getattr(self.model, "model", None), "vision_tower", None)
        if tower is not None:
            tower.eval()
        if self.config.train.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        return self

    def load_data(self) -> "Trainer":
        """The training samples (every data option of the config), and the projector warm start when asked."""
        from lntune.data.dataset import build_dataset

        d = self.config.data
        self.dataset = build_dataset(d, self.processor, self.config.train.seed)
        if len(self.dataset) == 0:
            raise LntuneError(f"{d.path}: no usable training samples")
        t = self.config.train
        if t.batch_size * self.world > len(self.dataset):  # one batch holds every sample: say so, and say it so
            fits = -(-len(self.dataset) // self.world)
            if self.main:
                print(f"lntune: warning: train.batch_size {t.batch_size} x {self.world} processes is more than the "
                      f"{len(self.dataset)} samples; using batch_size {fits}", file=sys.stderr)
            t.batch_size = fits
        resuming = self.resume and list_checkpoints(self.out)
        if self.config.model.projector_init == "caption_alignment" and not self.config.model.base and not resuming:
            self._warm_start_projector()  # on whole tensors, before any sharding
        return self

    def prepare(self, total_steps: int | None = None) -> "Trainer":
        """Loss, optimizer, scheduler (over `total_steps`; default: the data's epochs and max_steps), resume,
        accelerate's wrappers. Without data, `total_steps` is required."""
        t, accelerator = self.config.train, self.accelerator
        self.wrapper = SupervisedLoss(self.model, compile_layers=t.compile)
        if self.layout == "fsdp2":
            shards.shard_for_fsdp2(self.wrapper, self.model)  # before the optimizer: sharding replaces the parameters
        if self.dataset is not None:
            self.per_epoch = plan.steps_per_epoch(len(self.epoch_plan(0)), t.grad_accum)
            if self.per_epoch == 0:
                raise LntuneError(f"{self.config.data.path}: {len(self.dataset)} samples are fewer than one optimizer "
                                  f"step (batch_size {t.batch_size} x grad_accum {t.grad_accum} x {self.world} processes)")
            if total_steps is None:
                epochs = self.per_epoch * t.epochs
                total_steps = epochs if t.max_steps is None else min(t.max_steps, epochs)
        if total_steps is None:
            raise LntuneError("Trainer.prepare: total_steps is required without training data")
        self.total_steps = total_steps

        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.params = [p for _, p in named]
        optimizer = make_optimizer(named, t)
        self.scheduler = make_scheduler(optimizer, t.scheduler, math.ceil(t.warmup_ratio * total_steps), total_steps)

        checkpoints = list_checkpoints(self.out) if self.resume else []
        if checkpoints:
            require_complete(checkpoints[-1])
            load_optimizer = self._load_optimizer_state
            state = load_checkpoint(checkpoints[-1], self.model, optimizer, self.scheduler, load_optimizer=load_optimizer)
            self.global_step, self.epoch, self.done_in_epoch = state["step"], state["epoch"], state["steps_in_epoch"]
        self.resumed_from = checkpoints[-1] if checkpoints else None

        if self.deepspeed:
            deepspeed_run.fill_bucket_sizes(accelerator, self.model)
        if self.layout == "fsdp2":
            self.optimizer = accelerator.prepare(optimizer)  # the model is already sharded: no DDP wrapper around it
        else:
            self.wrapper, self.optimizer = accelerator.prepare(self.wrapper, optimizer)
        if self.deepspeed and self.resumed_from:
            deepspeed_run.load_engine_state(self.wrapper, self.resumed_from)  # its optimizer state: the engine's own
        self.grads = GradRecorder(self.model, t.track_grads or [], self.out / "grads.jsonl",
                                  enabled=self.main and bool(t.track_grads))
        self.guard = FiniteGuard(self.out, t.on_nonfinite, last_good=lambda: list_checkpoints(self.out))
        return self

    def _load_optimizer_state(self, optimizer, state, source) -> None:
        deepspeed_run.check_marker(state, self.deepspeed, source)
        if not self.deepspeed:  # DeepSpeed's is loaded into its engine once prepared
            shards.load_optimizer_state(self.layout, self.wrapper, optimizer, state, source)

    # ---- the order of samples ----

    def epoch_plan(self, epoch: int) -> list[list[int]]:
        """The global micro-batches (sample indices) of `epoch`: a pure function of (seed, epoch)."""
        t, d = self.config.train, self.config.data
        return plan.epoch_micro_batches(self.dataset.lengths, t.batch_size * self.world, t.seed, epoch,
                                        d.group_by_length, self.world)

    def loader(self, micro_batches: list[list[int]], epoch: int):
        """This process's share of `micro_batches`, loaded and collated in order."""
        from lntune.data.collate import LlavaCollator

        mine = [plan.rank_slice(b, self.rank, self.world) for b in micro_batches]
        # Its own generator: creating an iterator must not draw from the global RNG (dropout), or resume would shift it.
        return torch.utils.data.DataLoader(self.dataset, batch_sampler=mine,
                                           collate_fn=LlavaCollator(self.processor.tokenizer.pad_token_id),
                                           num_workers=self.config.data.num_workers,
                                           generator=torch.Generator().manual_seed(self.config.train.seed + epoch))

    # ---- one step ----

    def step(self, group: list[dict]) -> StepResult:
        """One optimizer step over the micro-batches `group` (grad_accum of them): forward/backward, clip,
        the non-finite check, update, schedule."""
        result = self._forward_backward(group)
        # Under fp16 the grad scaler skips overflowing steps itself (and must see them): guard the loss only.
        guarded_norm = None if getattr(self.accelerator, "scaler", None) is not None else result.grad_norm
        # A DeepSpeed engine has already updated inside backward: only the check of the new weights applies.
        skipped = False if self.deepspeed else self.guard.before_update(self.global_step + 1, result.loss, guarded_norm)
        if not skipped:
            self.grads.record(self.global_step + 1)
            self.optimizer.step()
            self.guard.after_update(self.global_step + 1, self.params, self.accelerator)
        with _schedule_past_a_skipped_step() if skipped else contextlib.nullcontext():
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        return result

    def _forward_backward(self, group) -> StepResult:
        accelerator, wrapper = self.accelerator, self.wrapper
        device = accelerator.device
        local = sum(supervised_tokens(b["labels"]) for b in group)
        total = accelerator.reduce(torch.tensor(float(local), device=device), reduction="sum").item()
        divisor = max(total, 1.0) / accelerator.num_processes  # DDP and FSDP average gradients over processes
        loss_sum, tokens = torch.zeros((), device=device), 0
        for i, batch in enumerate(group):
            batch = {k: v.to(device) for k, v in batch.items()}
            tokens += int(batch["attention_mask"].sum())
            last = i == len(group) - 1
            with shards.no_sync(accelerator, self.layout, wrapper) if not last else contextlib.nullcontext():
                with accelerator.autocast():
                    loss = wrapper(batch["input_ids"], batch["attention_mask"], batch["labels"], batch["pixel_values"],
                                   divisor)
                accelerator.backward(loss)
            loss_sum += loss.detach()
        loss_value = accelerator.reduce(loss_sum, reduction="mean").item()
        # With clipping off, an infinite bound still yields the norm (the finite check needs it) and scales by exactly 1.
        if self.deepspeed:
            grad_norm = deepspeed_run.grad_norm(wrapper)  # the engine clipped in its step
        else:
            grad_norm = shards.whole(accelerator.clip_grad_norm_(self.params, self.config.train.max_grad_norm or float("inf")))
        tokens = int(accelerator.reduce(torch.tensor(tokens, device=device), reduction="sum").item())
        return StepResult(loss_value, grad_norm, tokens)

    # ---- the run ----

    def run(self) -> Path:
        """`lntune train`: set up, step through the epochs' plans (logging, checkpointing), save the result."""
        self.setup()
        t = self.config.train
        logger = TrainLogger(self.out, self.total_steps, self.global_step, enabled=self.main)
        if self.main:
            truncate_jsonl(self.out / "grads.jsonl", self.global_step)  # a resumed run must not record a step twice
        started = time.perf_counter()
        loss_value = float("nan")
        while self.global_step < self.total_steps:
            micro = self.epoch_plan(self.epoch)
            steps_this_epoch = plan.steps_per_epoch(len(micro), t.grad_accum)
            batches = iter(self.loader(micro[self.done_in_epoch * t.grad_accum: steps_this_epoch * t.grad_accum],
                                       self.epoch))
            while self.done_in_epoch < steps_this_epoch and self.global_step < self.total_steps:
                result = self.step([next(batches) for _ in range(t.grad_accum)])
                loss_value = result.loss
                self.done_in_epoch += 1
                step = self.global_step
                if step % t.log_steps == 0 or step == self.total_steps:
                    logger.log(step, self.epoch, loss_value, self.scheduler.get_last_lr()[0], result.grad_norm,
                               result.tokens)
                if t.save_steps and step % t.save_steps == 0 and step < self.total_steps:
                    self.save_checkpoint()
            if self.done_in_epoch >= steps_this_epoch:
                self.epoch, self.done_in_epoch = self.epoch + 1, 0
        logger.close()
        self.guard.finish()
        self.save(time.perf_counter() - started, loss_value)
        # The other ranks leave save() while the main one still writes; tearing the process group down under it
        # now and then aborted a gloo rank at exit (SIGABRT after a finished run).
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()
        return self.out

    def save_checkpoint(self) -> None:
        """checkpoint-<step>: trainable weights, optimizer, scheduler, RNG and position (every process gathers)."""
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        tensors = shards.full_trainable_state(accelerator, self.layout, self.model, self.wrapper)
        also_write = None
        if self.deepspeed:  # every process writes its optimizer shard beside the checkpoint, then it moves in
            staging = RunDir(self.out).checkpoint(self.global_step).with_name(f"{CHECKPOINT_PREFIX}{self.global_step}.tmp-deepspeed")
            deepspeed_run.write_checkpoint(self.wrapper, staging)
            accelerator.wait_for_everyone()
            optimizer_state, also_write = deepspeed_run.MARKER, lambda folder: deepspeed_run.move_into(staging, folder)
        else:
            optimizer_state = shards.optimizer_state(self.layout, self.wrapper, self.optimizer.optimizer)
        if self.main:
            save_checkpoint(self.out, self.global_step, self.model, self.optimizer.optimizer, self.scheduler,
                            {"step": self.global_step, "epoch": self.epoch, "steps_in_epoch": self.done_in_epoch},
                            self.config.train.save_total_limit, tensors=tensors, optimizer_state=optimizer_state,
                            also_write=also_write)

    def save(self, seconds: float, last_loss: float) -> None:
        """The result: trainable.safetensors, lntune.json, summary.json and the loss curve."""
        from lntune import __version__

        accelerator, out, config = self.accelerator, self.out, self.config
        accelerator.wait_for_everyone()
        tensors = shards.full_trainable_state(accelerator, self.layout, self.model, self.wrapper)
        if not self.main:
            return
        save_result(out, None, tensors=tensors, run_meta={"format": 1, "lntune_version": __version__,
                                                          "base": base_entry(config, pin=True), "strategy": self.spec.to_dict(),
                                                          "config": config.to_dict()})
        summary = {"steps": self.global_step, "final_loss": last_loss, "train_seconds": seconds,
                   "samples": len(self.dataset), "peak_memory_mb": peak_memory_mb(accelerator.device),
                   "device": str(accelerator.device)}
        (out / "summary.json").write_text(dumps_strict(summary, out / "summary.json", indent=2))
        plot_loss_curve(out / "metrics.jsonl", out / "loss.png", title=f"{config.train.strategy}: {out.name}")
        print(f"lntune: done in {seconds:.0f} s, final loss {last_loss:.4f}, peak memory "
              f"{summary['peak_memory_mb']:.0f} MB -> {RunDir(out).trainable_file}")

    def _warm_start_projector(self) -> None:
        import random

        from lntune.model.projector_warmstart import align_projector

        config = self.config
        records = [s.record for s in self.dataset.samples]
        if len(records) > WARM_START_PAIRS:  # the features of every pair are held in memory at once
            records = random.Random(config.model.seed).sample(records, WARM_START_PAIRS)
        stats = align_projector(self.model, self.processor, records, config.data.image_folder,
                                steps=config.model.projector_init_steps, rounds=config.model.projector_init_rounds,
                                seed=config.model.seed, progress=self.main)
        if self.main:
            print(f"lntune: projector warm start from {stats['pairs']} caption pairs, {stats['steps']} steps, "
                  f"alignment loss {stats['final_loss']}, {stats['rounds']} self-training rounds")
